"""The database schema: SQLModel table classes and the column types they need.

Declares tables only; it runs no query and knows no business rule (see ``sql.py``).
The Alembic revisions under ``migrations/versions`` must create exactly these
tables; ``tests/test_storage.py::test_models_match_migrations`` checks that they do.
Change a table here, then add a revision there.

The classes are never instantiated: ``sql.py`` works on their ``Table`` objects
(``FEEDS``, ``ITEMS``, ...) with SQLAlchemy Core and maps rows to the records of
``feedwatch._model`` / ``feedwatch.types`` itself, so no SQLModel object leaves
this package.

Every datetime column is :class:`UTCDateTime`: aware UTC in and out, stored as
``timestamptz`` on PostgreSQL and as naive UTC text on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import registry
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

#: Deterministic constraint and index names, identical on SQLite and PostgreSQL,
#: so that migrations can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: feedwatch's own metadata (not SQLModel's global one), so that no other
#: SQLModel class anywhere can end up in our migrations.
metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Binding a naive datetime raises ``ValueError``: feedwatch never guesses a zone.
    SQLite has no time zones, so values are stored there as naive UTC (which also
    keeps their text form sortable) and made aware again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: feedwatch stores aware UTC only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class _Table(SQLModel, registry=registry(metadata=metadata)):
    """Base of the table classes: puts them in :data:`metadata`."""


def _col(type_: Any, *args: Any, nullable: bool = True, **kwargs: Any) -> Any:
    """A SQLModel field backed by an explicit SQLAlchemy column."""
    return Field(sa_column=Column(type_, *args, nullable=nullable, **kwargs))


class FeedRow(_Table, table=True):
    """A feed from feeds.yaml and its polling state. The row is also the lease."""

    __tablename__ = "feeds"

    id: int | None = Field(default=None, primary_key=True)
    #: Stable name from the configuration (renames keep the row).
    name: str = _col(Text, nullable=False, unique=True)
    url: str = _col(Text, nullable=False)
    #: Title from the configuration.
    title: str | None = _col(Text)
    #: Title from the feed document.
    feed_title: str | None = _col(Text)
    #: Poll interval in seconds.
    interval: float = _col(Float, nullable=False)
    tags: list[str] = _col(JSON, nullable=False)
    active: bool = _col(Boolean, nullable=False)
    created_at: datetime = _col(UTCDateTime, nullable=False)
    etag: str | None = _col(Text)
    last_modified: str | None = _col(Text)
    last_poll_at: datetime | None = _col(UTCDateTime)
    #: When the feed is due; also the lease expiry while claimed.
    next_poll_at: datetime | None = _col(UTCDateTime, index=True)
    last_success_at: datetime | None = _col(UTCDateTime)
    #: "ok", "not_modified" or "error"; None before the first poll.
    status: str | None = _col(String(16))
    http_status: int | None = _col(Integer)
    consecutive_errors: int = _col(Integer, nullable=False)
    last_error_kind: str | None = _col(String(32))
    last_error: str | None = _col(Text)
    #: Token of the worker that claimed the feed; None when not claimed.
    lease_owner: str | None = _col(String(200))
    lease_expires_at: datetime | None = _col(UTCDateTime)
    #: First error of the current run of errors (rate limiting does not count).
    failing_since: datetime | None = _col(UTCDateTime)
    #: Set when the feed is disabled (410 Gone, failing for too long); a config change clears it.
    disabled_at: datetime | None = _col(UTCDateTime)
    disabled_reason: str | None = _col(Text)
    #: A permanent redirect target seen on ``moved_seen`` polls in a row ...
    moved_candidate: str | None = _col(Text)
    moved_seen: int = _col(Integer, nullable=False, server_default="0")
    #: ... becomes the URL polled (``url`` stays as configured).
    fetch_url: str | None = _col(Text)
    #: RSS <ttl> of the last document fetched, minutes (a 304 repeats that document).
    ttl_minutes: int | None = _col(Integer)
    #: Fingerprint of the last document parsed (or that failed to parse), so that a
    #: 200 repeating it is not parsed again; ``body_error``: why it failed, if it did.
    body_hash: str | None = _col(Text)
    body_error: str | None = _col(Text)


class ItemRow(_Table, table=True):
    """One entry of one feed, unique per (feed, entry key)."""

    __tablename__ = "items"
    __table_args__ = (UniqueConstraint("feed_id", "entry_key"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = _col(Integer, ForeignKey("feeds.id"), nullable=False)
    entry_key: str = _col(Text, nullable=False)
    guid: str | None = _col(Text)
    url: str | None = _col(Text)
    #: Not indexed: a PostgreSQL index entry holds at most about 2.7 kB, and a
    #: link can be longer (alerts index its hash, ``AlertRow.story_key``).
    canonical_url: str | None = _col(Text)
    title: str = _col(Text, nullable=False)
    content_html: str = _col(Text, nullable=False)
    content_text: str = _col(Text, nullable=False)
    author: str | None = _col(Text)
    published: datetime | None = _col(UTCDateTime)
    updated: datetime | None = _col(UTCDateTime)
    first_seen: datetime = _col(UTCDateTime, nullable=False)
    #: The poll that stored the current content (first_seen for a never-updated item).
    last_changed_at: datetime = _col(UTCDateTime, nullable=False)
    sort_at: datetime = _col(UTCDateTime, nullable=False, index=True)
    tags: list[str] = _col(JSON, nullable=False)
    language: str | None = _col(String(35))
    content_hash: str = _col(String(128), nullable=False)
    hash_changes: int = _col(Integer, nullable=False)


class RuleRow(_Table, table=True):
    """A keyword rule from feeds.yaml."""

    __tablename__ = "rules"

    id: int | None = Field(default=None, primary_key=True)
    name: str = _col(Text, nullable=False, unique=True)
    query: str = _col(Text, nullable=False)
    active: bool = _col(Boolean, nullable=False)
    created_at: datetime = _col(UTCDateTime, nullable=False)
    updated_at: datetime = _col(UTCDateTime, nullable=False)


class AlertRow(_Table, table=True):
    """A rule matched an item; unique per (rule, item) and per (rule, story).

    The story is the item's canonical URL, so that the same news alerts once per
    rule whether a feed repeats it as another item or several feeds carry it.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("rule_id", "item_id"),
        # A unique index rather than a constraint: SQLite adds one without
        # rebuilding the table (which other tables' foreign keys point at).
        Index("ix_alerts_rule_id_story_key", "rule_id", "story_key", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    rule_id: int = _col(Integer, ForeignKey("rules.id"), nullable=False)
    item_id: int = _col(Integer, ForeignKey("items.id"), nullable=False, index=True)
    #: SHA-256 (hex) of the item's canonical URL when the alert was raised: a key
    #: of bounded size (a PostgreSQL index entry holds at most about 2.7 kB, and a
    #: link can be longer). None when the item has no link: such an alert is
    #: unique per (rule, item) only; so is an older duplicate the migration found.
    story_key: str | None = _col(String(64))
    created_at: datetime = _col(UTCDateTime, nullable=False, index=True)
    #: [{"field": "title"|"content", "start": int, "end": int}, ...]
    spans: list[dict[str, Any]] = _col(JSON, nullable=False)


class SubscriberRow(_Table, table=True):
    """An alert subscriber from feeds.yaml."""

    __tablename__ = "subscribers"

    id: int | None = Field(default=None, primary_key=True)
    name: str = _col(Text, nullable=False, unique=True)
    #: "email" or "webhook".
    channel: str = _col(String(32), nullable=False)
    #: The subscriber's validated settings, as JSON text.
    spec: str = _col(Text, nullable=False)
    active: bool = _col(Boolean, nullable=False)
    created_at: datetime = _col(UTCDateTime, nullable=False)
    updated_at: datetime = _col(UTCDateTime, nullable=False)
    #: Set when a receiver said it is gone (webhook 410); a config change clears it.
    disabled_at: datetime | None = _col(UTCDateTime)
    disabled_reason: str | None = _col(Text)


class DeliveryRow(_Table, table=True):
    """The outbox: one message to one subscriber, written in the poll's transaction.

    Unique per (subscriber, alert) for immediate deliveries and per (subscriber,
    window) for digests. The row is also the lease while a dispatcher sends it.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "alert_id"),
        UniqueConstraint("subscriber_id", "window_start"),
        Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = _col(Integer, ForeignKey("subscribers.id"), nullable=False)
    #: "alert" (immediate, one alert), "digest" or "notice" (for operators).
    kind: str = _col(String(16), nullable=False)
    #: The alert of an immediate delivery (None for digests).
    alert_id: int | None = _col(Integer, ForeignKey("alerts.id"))
    window_start: datetime | None = _col(UTCDateTime)
    window_end: datetime | None = _col(UTCDateTime)
    #: Stable across retries: webhook-id and Message-ID.
    message_id: str = _col(String(64), nullable=False, unique=True)
    #: "pending", "sent" or "failed".
    status: str = _col(String(16), nullable=False)
    #: Attempts made (failed ones, plus the successful one).
    attempts: int = _col(Integer, nullable=False)
    #: When it is due (also the lease expiry while claimed).
    next_attempt_at: datetime = _col(UTCDateTime, nullable=False)
    created_at: datetime = _col(UTCDateTime, nullable=False)
    updated_at: datetime = _col(UTCDateTime, nullable=False)
    last_attempt_at: datetime | None = _col(UTCDateTime)
    sent_at: datetime | None = _col(UTCDateTime)
    #: A digest's content is fixed once it was first claimed; later alerts go to the next window.
    sealed: bool = _col(Boolean, nullable=False)
    #: HTTP status or SMTP code of the last attempt.
    last_code: int | None = _col(Integer)
    last_error: str | None = _col(Text)
    lease_owner: str | None = _col(String(200))
    #: For kind "notice": the operator notice itself.
    notice_subject: str | None = _col(Text)
    notice_text: str | None = _col(Text)


class DeliveryAlertRow(_Table, table=True):
    """An alert in a digest delivery; an alert goes to one digest of a subscriber."""

    __tablename__ = "delivery_alerts"
    __table_args__ = (UniqueConstraint("subscriber_id", "alert_id"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = _col(Integer, ForeignKey("deliveries.id"), nullable=False, index=True)
    subscriber_id: int = _col(Integer, ForeignKey("subscribers.id"), nullable=False)
    alert_id: int = _col(Integer, ForeignKey("alerts.id"), nullable=False)


FEEDS: Table = metadata.tables["feeds"]
ITEMS: Table = metadata.tables["items"]
RULES: Table = metadata.tables["rules"]
ALERTS: Table = metadata.tables["alerts"]
SUBSCRIBERS: Table = metadata.tables["subscribers"]
DELIVERIES: Table = metadata.tables["deliveries"]
DELIVERY_ALERTS: Table = metadata.tables["delivery_alerts"]

__all__ = [
    "ALERTS",
    "DELIVERIES",
    "DELIVERY_ALERTS",
    "FEEDS",
    "ITEMS",
    "NAMING_CONVENTION",
    "RULES",
    "SUBSCRIBERS",
    "AlertRow",
    "DeliveryAlertRow",
    "DeliveryRow",
    "FeedRow",
    "ItemRow",
    "RuleRow",
    "SubscriberRow",
    "UTCDateTime",
    "metadata",
]
