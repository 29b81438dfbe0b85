"""SQL storage: :class:`SqlStorage` implements the storage contract on SQLite and PostgreSQL.

Does:
  * open an engine from a database URL (:func:`open_storage`), with SQLite set up for
    several processes (WAL, busy timeout, foreign keys, ``BEGIN IMMEDIATE`` for writers);
  * apply the Alembic migrations shipped in ``migrations/`` (:meth:`SqlStorage.migrate`);
  * run each operation of :class:`~feedwatch.storage.base.StorageType` in its own short
    transaction, mapping rows to the records of ``feedwatch._model`` / ``feedwatch.types``;
  * translate SQLAlchemy, DBAPI and Alembic errors into
    :class:`~feedwatch.exceptions.StorageError` (chained) that say what failed and where.

Does not:
  * decide anything about feeds or items: it writes what the intents say (the pipeline
    and ``decide`` choose statuses, next poll times, new/updated items);
  * read the clock or the configuration: times come in as arguments;
  * keep a transaction open after a method returns, or migrate on its own
    (call :meth:`SqlStorage.migrate` on start);
  * log: callers log what the returned reports and results say.

Schema: ``_tables.py``. A programming error (such as a naive datetime) raises
``ValueError``/``TypeError``, not ``StorageError``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import (
    Row,
    Select,
    Table,
    and_,
    case,
    create_engine,
    event,
    func,
    inspect,
    literal,
    or_,
    select,
    text,
    union,
    update,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError, StatementError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ClauseElement

from .. import __version__
from .._model import (
    AlertContent,
    CommitResult,
    DeliveryIntent,
    DeliveryJob,
    EntryForUpdate,
    FeedForUpdate,
    FeedSpec,
    FeedUpdateIntent,
    Item,
    ItemChange,
    ItemIntent,
    Notice,
    PollStatus,
    RuleSpec,
    Span,
    SubscriberSpec,
)
from ..exceptions import StorageError
from ..types import (
    DeliveryStatus,
    FeedStatus,
    ItemForMatching,
    RuleStatus,
    StoredAlert,
    StoredItem,
    StoredSpan,
    SubscriberStatus,
)
from ._tables import (
    ALERTS,
    DELIVERIES,
    DELIVERY_ALERTS,
    FEEDS,
    ITEMS,
    RULES,
    SUBSCRIBERS,
    UTCDateTime,
)
from .base import StorageType, SyncReport

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["DEFAULT_BUSY_TIMEOUT", "SCHEMA_HEAD", "SqlStorage", "alembic_config", "open_storage"]

#: The newest migration (``migrations/versions``). A database already there is
#: not handed to Alembic at all, which keeps every command's start-up short;
#: ``tests/test_storage.py`` checks this against Alembic's own head.
SCHEMA_HEAD = "0005"

#: Seconds a SQLite writer waits for another writer before "database is locked".
DEFAULT_BUSY_TIMEOUT = 10.0

#: Seconds to wait for a PostgreSQL connection (unless the URL says ``connect_timeout``).
PG_CONNECT_TIMEOUT = 10

#: Where Alembic finds ``env.py`` and ``versions/``.
MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: Bind parameters per IN list; SQLite's default limit is 999 on old builds.
_CHUNK = 500

#: Connection execution option that makes the SQLite "begin" hook emit BEGIN IMMEDIATE.
_WRITE = "feedwatch_write"

#: First key of the PostgreSQL advisory locks taken by migrate and sync_config
#: (the second key is the schema, so that schemas on one server do not contend).
_PG_LOCK_MIGRATE = 0x0FEED001
_PG_LOCK_SYNC = 0x0FEED002

_T = TypeVar("_T")
_Row = Row[*tuple[Any, ...]]


def open_storage(url: str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> SqlStorage:
    """Open (but do not connect to or migrate) the database at ``url``.

    Accepted URLs: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``,
    ``sqlite://`` (in memory, one connection shared by all threads),
    ``postgresql://…``, ``postgres://…`` and ``postgresql+psycopg://…`` (always
    the psycopg 3 driver). ``busy_timeout`` is how long a SQLite writer waits
    for another one, in seconds.

    Raises:
        StorageError: the URL is malformed or names an unsupported database.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StorageError(
            "invalid database URL (expected sqlite:///path.db or postgresql://user@host/db)"
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "sqlite" and driver in ("", "pysqlite"):
        return SqlStorage(_sqlite_engine(parsed, busy_timeout), busy_timeout=busy_timeout)
    if backend in ("postgresql", "postgres") and driver in ("", "psycopg"):
        return SqlStorage(_postgres_engine(parsed), busy_timeout=busy_timeout)
    raise StorageError(
        f"unsupported database URL scheme {parsed.drivername!r}: "
        "use sqlite:///path.db or postgresql://user@host/db"
    )


def alembic_config(connection: Connection) -> Config:
    """An Alembic configuration for feedwatch's migrations, running on ``connection``.

    Built in code (no ``alembic.ini``); ``migrations/env.py`` takes the connection
    from ``config.attributes["connection"]``.
    """
    from alembic.config import Config  # only when migrating

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


class SqlStorage(StorageType):
    """The storage contract on SQLAlchemy; see :class:`~feedwatch.storage.base.StorageType`.

    Thread-safe: every method takes its own pooled connection and transaction
    (an in-memory SQLite database has a single connection, so its methods are
    serialised by a lock).
    """

    def __init__(self, engine: Engine, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        self._where = _describe(engine.url)
        self._busy_timeout = busy_timeout
        self._serial: AbstractContextManager[Any] = (
            threading.RLock() if isinstance(engine.pool, StaticPool) else nullcontext()
        )

    def __repr__(self) -> str:
        return f"<SqlStorage {self._where}>"

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, for tests and diagnostics (not part of the contract)."""
        return self._engine

    # ------------------------------------------------------------------ lifecycle

    def migrate(self) -> None:
        if self._at_head():
            return
        from alembic import command  # Alembic loads only to migrate
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        with self._transaction("schema migration", write=True) as conn:
            self._pg_lock(conn, _PG_LOCK_MIGRATE)
            config = alembic_config(conn)
            try:
                script = ScriptDirectory.from_config(config)
                known = {rev.revision for rev in script.walk_revisions()}
                current = MigrationContext.configure(conn).get_current_heads()
                unknown = sorted(set(current) - known)
                if unknown:
                    raise StorageError(
                        f"the database at {self._where} has schema revision "
                        f"{', '.join(unknown)}, newer than this feedwatch {__version__} knows "
                        f"(its newest is {script.get_current_head()}); "
                        "upgrade feedwatch to use this database"
                    )
                command.upgrade(config, "head")
            except CommandError as exc:
                raise StorageError(f"schema migration failed on {self._where}: {exc}") from exc

    def _at_head(self) -> bool:
        """Whether the schema is exactly at :data:`SCHEMA_HEAD` (one cheap read)."""
        try:
            with self._transaction("reading the schema version", write=False) as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return False
                versions = set(conn.scalars(text("SELECT version_num FROM alembic_version")))
        except StorageError:
            return False  # let the migration say what is wrong
        return versions == {SCHEMA_HEAD}

    def close(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------ configuration

    def sync_config(
        self,
        feeds: Sequence[FeedSpec],
        rules: Sequence[RuleSpec],
        subscribers: Sequence[SubscriberSpec],
        now: datetime,
    ) -> dict[str, SyncReport]:
        _require_aware(now, "now")
        feed_values = {
            spec.name: {
                "url": spec.url,
                "title": spec.title,
                "interval": float(spec.interval),
                "tags": list(spec.tags),
                "active": spec.enabled,
            }
            for spec in _unique_names(feeds, "feed")
        }
        rule_values = {
            spec.name: {"query": spec.query, "active": True}
            for spec in _unique_names(rules, "rule")
        }
        subscriber_values = {
            spec.name: {"channel": spec.channel, "spec": spec.spec_json, "active": True}
            for spec in _unique_names(subscribers, "subscriber")
        }

        def feed_extra(changed: Mapping[str, Any]) -> dict[str, Any]:
            extra: dict[str, Any] = {}
            if "url" in changed:
                # The validators belong to the old URL; poll the new one soon.
                extra.update(
                    etag=None,
                    last_modified=None,
                    next_poll_at=now,
                    fetch_url=None,
                    moved_candidate=None,
                    moved_seen=0,
                    body_hash=None,
                    body_error=None,
                )
            if changed.get("active") is True:
                extra["next_poll_at"] = now
            if changed:
                # A disabled feed whose configuration changed deserves a new try, now,
                # with its backoff starting from scratch.
                was_disabled = FEEDS.c.disabled_at.is_not(None)
                extra.update(
                    disabled_at=None,
                    disabled_reason=None,
                    failing_since=None,
                    consecutive_errors=case((was_disabled, 0), else_=FEEDS.c.consecutive_errors),
                )
                if "next_poll_at" not in extra:
                    extra["next_poll_at"] = case(
                        (was_disabled, literal(now, UTCDateTime())), else_=FEEDS.c.next_poll_at
                    )
            return extra

        def touched(changed: Mapping[str, Any]) -> dict[str, Any]:
            return {"updated_at": now}

        def subscriber_extra(changed: Mapping[str, Any]) -> dict[str, Any]:
            # New settings (say, a new webhook URL after a 410) deserve a new try.
            if "spec" in changed:
                return {"updated_at": now, "disabled_at": None, "disabled_reason": None}
            return {"updated_at": now}

        with self._transaction("configuration sync", write=True) as conn:
            self._pg_lock(conn, _PG_LOCK_SYNC)
            return {
                "feeds": _sync_table(
                    conn,
                    FEEDS,
                    feed_values,
                    rename_by="url",
                    new_row={
                        "created_at": now,
                        "next_poll_at": now,
                        "consecutive_errors": 0,
                    },
                    extra=feed_extra,
                ),
                "rules": _sync_table(
                    conn,
                    RULES,
                    rule_values,
                    rename_by="query",
                    new_row={"created_at": now, "updated_at": now},
                    extra=touched,
                ),
                "subscribers": _sync_table(
                    conn,
                    SUBSCRIBERS,
                    subscriber_values,
                    rename_by=None,
                    new_row={"created_at": now, "updated_at": now},
                    extra=subscriber_extra,
                ),
            }

    # ------------------------------------------------------------------ polling

    def feeds_for_poll(self, names: Sequence[str] | None = None) -> list[FeedForUpdate]:
        base = select(*_FEED_FOR_UPDATE_COLUMNS).where(
            FEEDS.c.active.is_(True), FEEDS.c.disabled_at.is_(None)
        )
        with self._transaction("reading feeds to poll", write=False) as conn:
            if names is None:
                rows = list(conn.execute(base.order_by(FEEDS.c.name)))
            else:
                rows = []
                for chunk in _chunks(dict.fromkeys(names)):
                    rows.extend(conn.execute(base.where(FEEDS.c.name.in_(chunk))))
                rows.sort(key=lambda row: str(row.name))
        return [_feed_for_update(row, lease_token=None) for row in rows]

    def claim_due_feeds(
        self, now: datetime, limit: int, lease_seconds: float, token: str
    ) -> list[FeedForUpdate]:
        _require_aware(now, "now")
        if limit <= 0:
            return []
        until = now + timedelta(seconds=lease_seconds)
        due = (
            select(FEEDS.c.id)
            .where(
                FEEDS.c.active.is_(True),
                FEEDS.c.disabled_at.is_(None),
                or_(FEEDS.c.next_poll_at.is_(None), FEEDS.c.next_poll_at <= now),
            )
            .order_by(FEEDS.c.next_poll_at.asc().nulls_first(), FEEDS.c.id)
            .limit(limit)
            # PostgreSQL: rows another worker is claiming right now are skipped, and
            # rows it has just claimed no longer qualify when re-checked. SQLite
            # ignores this clause; BEGIN IMMEDIATE serialises the claimers instead.
            .with_for_update(skip_locked=True)
        )
        with self._transaction("claiming due feeds", write=True) as conn:
            ids = list(conn.scalars(due))
            if not ids:
                return []
            rows = list(
                conn.execute(
                    update(FEEDS)
                    .where(FEEDS.c.id.in_(ids))
                    .values(next_poll_at=until, lease_owner=token, lease_expires_at=until)
                    .returning(*_FEED_FOR_UPDATE_COLUMNS)
                )
            )
        order = {feed_id: position for position, feed_id in enumerate(ids)}
        rows.sort(key=lambda row: order[row.id])
        return [_feed_for_update(row, lease_token=token) for row in rows]

    def entries_for_update(self, feed_id: int, keys: Sequence[str]) -> dict[str, EntryForUpdate]:
        return self.entries_for_feeds({feed_id: keys}).get(feed_id, {})

    def entries_for_feeds(
        self, keys_by_feed: Mapping[int, Sequence[str]]
    ) -> dict[int, dict[str, EntryForUpdate]]:
        found: dict[int, dict[str, EntryForUpdate]] = {}
        wanted = {feed_id: keys for feed_id, keys in keys_by_feed.items() if keys}
        if not wanted:
            return found
        query = select(
            ITEMS.c.id,
            ITEMS.c.entry_key,
            ITEMS.c.content_hash,
            ITEMS.c.hash_changes,
            ITEMS.c.updated,
        )
        with self._transaction("reading stored items", write=False) as conn:
            # Most feeds of a first poll have no items yet: one query finds those
            # that do, and only they are asked about their keys.
            stocked: set[int] = set()
            for ids in _chunks(wanted):
                stocked.update(
                    conn.scalars(select(ITEMS.c.feed_id).where(ITEMS.c.feed_id.in_(ids)).distinct())
                )
            for feed_id in stocked:
                entries = found[feed_id] = {}
                for chunk in _chunks(dict.fromkeys(wanted[feed_id])):
                    rows = conn.execute(
                        query.where(ITEMS.c.feed_id == feed_id, ITEMS.c.entry_key.in_(chunk))
                    )
                    for row in rows:
                        entries[row.entry_key] = EntryForUpdate(
                            id=row.id,
                            entry_key=row.entry_key,
                            content_hash=row.content_hash,
                            hash_changes=row.hash_changes,
                            updated=row.updated,
                        )
        return found

    def commit_feed(self, intent: FeedUpdateIntent) -> CommitResult:
        (result,) = self.commit_feeds([intent])
        return result

    def commit_feeds(self, intents: Sequence[FeedUpdateIntent]) -> list[CommitResult]:
        for intent in intents:
            _require_aware(intent.polled_at, "polled_at")
            _require_aware(intent.next_poll_at, "next_poll_at")
        if not intents:
            return []
        what = (
            f"commit of feed {intents[0].feed_id}"
            if len(intents) == 1
            else f"commit of {len(intents)} feeds"
        )
        results: list[CommitResult] = []
        with self._transaction(what, write=True) as conn:
            for intent in intents:
                if not self._update_feed_state(conn, intent):
                    # The lease went to another worker: nothing of this poll is written.
                    results.append(CommitResult(written=False))
                    continue
                new_ids, updated = self._write_items(conn, intent)
                alerts = self._write_alerts(conn, intent, new_ids)
                deliveries = self._write_deliveries(conn, intent, alerts)
                deliveries += self._write_notices(conn, intent.notices, intent.polled_at)
                results.append(
                    CommitResult(
                        written=True,
                        new_items=len(new_ids),
                        updated_items=updated,
                        new_alerts=len(alerts),
                        new_deliveries=deliveries,
                    )
                )
        return results

    # ------------------------------------------------------------------ reading

    def list_feeds(self, include_inactive: bool = False) -> list[FeedStatus]:
        counts = (
            select(ITEMS.c.feed_id, func.count().label("n")).group_by(ITEMS.c.feed_id).subquery()
        )
        query = (
            select(FEEDS, func.coalesce(counts.c.n, 0).label("item_count"))
            .outerjoin(counts, counts.c.feed_id == FEEDS.c.id)
            .order_by(FEEDS.c.name)
        )
        if not include_inactive:
            query = query.where(FEEDS.c.active.is_(True))
        with self._transaction("listing feeds", write=False) as conn:
            rows = list(conn.execute(query))
        return [
            FeedStatus(
                name=row.name,
                url=row.url,
                title=row.title if row.title is not None else row.feed_title,
                active=bool(row.active),
                last_poll_at=row.last_poll_at,
                next_poll_at=row.next_poll_at,
                status=row.status,
                item_count=int(row.item_count),
                consecutive_errors=row.consecutive_errors,
                last_error_kind=row.last_error_kind,
                last_error=row.last_error,
                last_success_at=row.last_success_at,
                disabled_at=row.disabled_at,
                disabled_reason=row.disabled_reason,
                moved_to=row.fetch_url,
                failing_since=row.failing_since,
            )
            for row in rows
        ]

    def disabled_feeds(self) -> list[tuple[str, str]]:
        query = (
            select(FEEDS.c.name, FEEDS.c.disabled_reason)
            .where(FEEDS.c.active.is_(True), FEEDS.c.disabled_at.is_not(None))
            .order_by(FEEDS.c.name)
        )
        with self._transaction("listing disabled feeds", write=False) as conn:
            return [(row.name, row.disabled_reason or "") for row in conn.execute(query)]

    def recent_publish_times(self, feed_id: int, limit: int = 20) -> list[datetime]:
        with self._transaction("reading publication times", write=False) as conn:
            query = (
                select(ITEMS.c.sort_at)
                .where(ITEMS.c.feed_id == feed_id)
                .order_by(ITEMS.c.sort_at.desc())
                .limit(limit)
            )
            return list(conn.scalars(query))

    def list_items(
        self,
        feed: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[StoredItem]:
        """Stored items, newest first (by ``sort_at``, then id); ``since`` bounds ``sort_at``."""
        return self.search_items(feed=feed, rule=None, since=since, q=None, limit=limit)

    def list_alerts(
        self,
        rule: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[StoredAlert]:
        """Stored alerts, newest first (by ``created_at``, then id); ``since`` bounds
        ``created_at``. Alerts of deactivated rules are listed too."""
        query = (
            select(
                ALERTS.c.id,
                RULES.c.name.label("rule_name"),
                FEEDS.c.name.label("feed_name"),
                ITEMS.c.id.label("item_id"),
                ITEMS.c.title.label("item_title"),
                ITEMS.c.url.label("item_url"),
                ITEMS.c.content_text.label("item_text"),
                ALERTS.c.created_at,
                ALERTS.c.spans,
            )
            .join(RULES, RULES.c.id == ALERTS.c.rule_id)
            .join(ITEMS, ITEMS.c.id == ALERTS.c.item_id)
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
            .order_by(ALERTS.c.created_at.desc(), ALERTS.c.id.desc())
        )
        if rule is not None:
            query = query.where(RULES.c.name == rule)
        if since is not None:
            _require_aware(since, "since")
            query = query.where(ALERTS.c.created_at >= since)
        query = _limited(query, limit)
        with self._transaction("listing alerts", write=False) as conn:
            rows = list(conn.execute(query))
        return [
            StoredAlert(
                id=row.id,
                rule=row.rule_name,
                feed=row.feed_name,
                item_id=row.item_id,
                item_title=row.item_title,
                item_url=row.item_url,
                created_at=row.created_at,
                spans=tuple(
                    StoredSpan(field=str(s["field"]), start=int(s["start"]), end=int(s["end"]))
                    for s in row.spans or ()
                ),
                item_text=row.item_text,
            )
            for row in rows
        ]

    def rule_stats(self, recent_since: datetime) -> list[RuleStatus]:
        _require_aware(recent_since, "recent_since")
        recent = case((ALERTS.c.created_at >= recent_since, 1), else_=0)
        query = (
            select(
                RULES.c.name,
                RULES.c.query,
                RULES.c.active,
                func.count(ALERTS.c.id).label("alerts"),
                func.coalesce(func.sum(recent), 0).label("alerts_7d"),
                func.max(ALERTS.c.created_at).label("last_alert_at"),
            )
            # (rule_id, item_id) is unique, so its index serves this join.
            .outerjoin(ALERTS, ALERTS.c.rule_id == RULES.c.id)
            .group_by(RULES.c.id, RULES.c.name, RULES.c.query, RULES.c.active)
            .order_by(RULES.c.name)
        )
        with self._transaction("reading rule statistics", write=False) as conn:
            rows = list(conn.execute(query))
        return [
            RuleStatus(
                name=row.name,
                query=row.query,
                active=bool(row.active),
                alerts=int(row.alerts),
                alerts_7d=int(row.alerts_7d),
                last_alert_at=row.last_alert_at,
            )
            for row in rows
        ]

    def iter_items_for_matching(
        self, since: datetime | None = None, batch_size: int = 500
    ) -> Iterator[list[ItemForMatching]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if since is not None:
            _require_aware(since, "since")
        base = (
            select(
                ITEMS.c.id,
                FEEDS.c.name.label("feed_name"),
                ITEMS.c.url,
                ITEMS.c.title,
                ITEMS.c.content_text,
                ITEMS.c.author,
                ITEMS.c.sort_at,
                ITEMS.c.tags,
                FEEDS.c.tags.label("feed_tags"),
                ITEMS.c.language,
            )
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
            .order_by(ITEMS.c.sort_at.desc(), ITEMS.c.id.desc())
            .limit(batch_size)
        )
        if since is not None:
            base = base.where(ITEMS.c.sort_at >= since)
        # Checked above, on the call; the batches are read as they are asked for.
        return self._item_batches(base, batch_size)

    def _item_batches(self, base: Select[Any], batch_size: int) -> Iterator[list[ItemForMatching]]:
        after: tuple[datetime, int] | None = None
        while True:
            query = base
            if after is not None:
                # Keyset pagination: strictly after the last row of the previous batch.
                last_sort_at, last_id = after
                query = query.where(
                    or_(
                        ITEMS.c.sort_at < last_sort_at,
                        and_(ITEMS.c.sort_at == last_sort_at, ITEMS.c.id < last_id),
                    )
                )
            # The transaction ends before the batch is handed over.
            with self._transaction("reading items to match", write=False) as conn:
                rows = list(conn.execute(query))
            if not rows:
                return
            yield [
                ItemForMatching(
                    id=row.id,
                    feed=row.feed_name,
                    url=row.url,
                    title=row.title,
                    content_text=row.content_text,
                    author=row.author,
                    sort_at=row.sort_at,
                    tags=tuple(row.tags or ()),
                    feed_tags=tuple(row.feed_tags or ()),
                    language=row.language,
                )
                for row in rows
            ]
            if len(rows) < batch_size:
                return
            after = (rows[-1].sort_at, rows[-1].id)

    # ------------------------------------------------------------------ commit parts

    def _update_feed_state(self, conn: Connection, intent: FeedUpdateIntent) -> bool:
        """Update the feed row (fenced on the lease token); False if no row matched."""
        values: dict[str, Any] = {
            "last_poll_at": intent.polled_at,
            "next_poll_at": intent.next_poll_at,
            "status": intent.status.value,
            "http_status": intent.http_status,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if intent.feed_title is not None:
            values["feed_title"] = intent.feed_title
        if intent.body_hash is not None:
            values["body_hash"] = intent.body_hash
            values["body_error"] = intent.body_error
        if intent.disable_reason is not None:
            values["disabled_at"] = intent.polled_at
            values["disabled_reason"] = intent.disable_reason
        if intent.status is PollStatus.RATE_LIMITED:
            # Not an error: the error count and the failing run are left alone,
            # and so are the validators.
            values["last_error_kind"] = (
                intent.error_kind.value if intent.error_kind is not None else None
            )
            values["last_error"] = intent.error_message
        elif intent.status is PollStatus.ERROR:
            # Keep the validators: they still describe the content we hold.
            values["consecutive_errors"] = FEEDS.c.consecutive_errors + 1
            values["failing_since"] = func.coalesce(FEEDS.c.failing_since, intent.polled_at)
            values["last_error_kind"] = (
                intent.error_kind.value if intent.error_kind is not None else None
            )
            values["last_error"] = intent.error_message
        else:
            values["failing_since"] = None
            values.update(self._moved(conn, intent))
            values["consecutive_errors"] = 0
            values["last_error_kind"] = None
            values["last_error"] = None
            values["last_success_at"] = intent.polled_at
            if intent.status is PollStatus.OK:
                values["ttl_minutes"] = intent.ttl_minutes
                # A 200 replaces the validators; missing ones are cleared.
                values["etag"] = intent.etag
                values["last_modified"] = intent.last_modified
            else:
                # A 304 that does not repeat a validator leaves the stored one valid
                # (RFC 9110 §15.4.5: the cached representation is still current).
                if intent.etag is not None:
                    values["etag"] = intent.etag
                if intent.last_modified is not None:
                    values["last_modified"] = intent.last_modified
        if self._dialect == "sqlite" and not any(
            isinstance(value, ClauseElement) for value in values.values()
        ):
            return _sqlite_update_feed(conn, intent.feed_id, intent.lease_token, values)
        statement = update(FEEDS).where(FEEDS.c.id == intent.feed_id).values(values)
        if intent.lease_token is not None:
            statement = statement.where(FEEDS.c.lease_owner == intent.lease_token)
        return bool(conn.execute(statement).rowcount)

    def _moved(self, conn: Connection, intent: FeedUpdateIntent) -> dict[str, Any]:
        """Columns for a permanent redirect: counted on polls in a row, then followed.

        A 302 (or no redirect) resets the count; the configured ``url`` never
        changes (``feedwatch feeds`` shows both); a config change resets it all.
        """
        if intent.moved_to is None:
            return {"moved_candidate": None, "moved_seen": 0}
        row = conn.execute(
            select(FEEDS.c.moved_candidate, FEEDS.c.moved_seen, FEEDS.c.url).where(
                FEEDS.c.id == intent.feed_id
            )
        ).first()
        if row is None:
            return {}
        seen = row.moved_seen + 1 if row.moved_candidate == intent.moved_to else 1
        values: dict[str, Any] = {"moved_candidate": intent.moved_to, "moved_seen": seen}
        if seen >= MOVE_AFTER:
            values["fetch_url"] = None if intent.moved_to == row.url else intent.moved_to
        return values

    def _write_items(
        self, conn: Connection, intent: FeedUpdateIntent
    ) -> tuple[dict[str, int], int]:
        """Insert the new items and update the changed ones.

        Returns the ids of the items really inserted, by entry key, and how many
        stored items were updated.
        """
        new = [change for change in intent.items if change.change is ItemChange.NEW]
        new_ids: dict[str, int] = {}
        if new and self._dialect == "sqlite":
            new_ids = _sqlite_insert_items(conn, intent.feed_id, intent.polled_at, new)
        elif new:
            statement = self._insert_ignoring_duplicates(ITEMS, ["feed_id", "entry_key"]).returning(
                ITEMS.c.id, ITEMS.c.entry_key
            )
            rows = [
                _item_values(change.item)
                | {
                    "feed_id": intent.feed_id,
                    "first_seen": change.item.first_seen,
                    "last_changed_at": intent.polled_at,
                    "hash_changes": change.hash_changes,
                }
                for change in new
            ]
            for row in conn.execute(statement, rows):
                new_ids[row.entry_key] = row.id
        updated = 0
        for change in intent.items:
            if change.change is ItemChange.UPDATED:
                updated += self._update_item(conn, intent, change)
        return new_ids, updated

    def _update_item(self, conn: Connection, intent: FeedUpdateIntent, change: ItemIntent) -> int:
        item = change.item
        values = _item_values(item) | {
            "last_changed_at": intent.polled_at,
            "hash_changes": change.hash_changes,
            # first_seen is kept, and so is the item's place in time: sort_at stays
            # clamped to the stored first_seen, as it was for the first version.
            "sort_at": case(
                (
                    literal(item.sort_at, UTCDateTime()) < ITEMS.c.first_seen,
                    literal(item.sort_at, UTCDateTime()),
                ),
                else_=ITEMS.c.first_seen,
            ),
        }
        del values["entry_key"]
        where = ITEMS.c.feed_id == intent.feed_id
        if change.existing_id is not None:
            where = and_(where, ITEMS.c.id == change.existing_id)
        else:
            where = and_(where, ITEMS.c.entry_key == item.entry_key)
        return int(conn.execute(update(ITEMS).where(where).values(values)).rowcount)

    def _write_alerts(
        self, conn: Connection, intent: FeedUpdateIntent, new_ids: Mapping[str, int]
    ) -> dict[tuple[str, str], int]:
        """Insert the alerts, at most one per (rule, item) and per (rule, story).

        The story key is the hash of the item's canonical URL (:func:`_story_key`),
        so an item repeating a story that already alerted a rule, in this feed or
        another, raises no alert for that rule; an item without a link dedupes per
        item only. The database enforces both (``ON CONFLICT DO NOTHING`` on either
        unique index): on PostgreSQL a concurrent commit of the same story waits
        for the first one, then skips its alert, without an error. Alerts naming an
        unknown or inactive rule, or an entry key this feed does not have, are
        skipped. Returns the ids of those really inserted, by (rule name, entry key),
        so that deliveries are written for those only.
        """
        if not intent.alerts:
            return {}
        rule_ids: dict[str, int] = {}
        for chunk in _chunks(dict.fromkeys(alert.rule for alert in intent.alerts)):
            rule_query = select(RULES.c.id, RULES.c.name).where(
                RULES.c.active.is_(True), RULES.c.name.in_(chunk)
            )
            rule_ids.update((row.name, row.id) for row in conn.execute(rule_query))
        item_ids = dict(new_ids)
        # The canonical URLs of the items this commit inserted; the others' as stored.
        urls = {change.item.entry_key: change.item.canonical_url for change in intent.items}
        missing = [
            a.entry_key
            for a in intent.alerts
            if a.entry_key not in item_ids or a.entry_key not in urls
        ]
        for chunk in _chunks(dict.fromkeys(missing)):
            item_query = select(ITEMS.c.id, ITEMS.c.entry_key, ITEMS.c.canonical_url).where(
                ITEMS.c.feed_id == intent.feed_id, ITEMS.c.entry_key.in_(chunk)
            )
            for row in conn.execute(item_query):
                item_ids[row.entry_key] = row.id
                urls[row.entry_key] = row.canonical_url
        rows: dict[tuple[int, int | str], dict[str, Any]] = {}
        for alert in intent.alerts:
            rule_id = rule_ids.get(alert.rule)
            item_id = item_ids.get(alert.entry_key)
            if rule_id is None or item_id is None:
                continue
            url = urls.get(alert.entry_key)
            story_key = _story_key(url) if url else None
            # In item order, the first alert of a story within this commit wins.
            rows.setdefault(
                (rule_id, story_key or item_id),
                {
                    "rule_id": rule_id,
                    "item_id": item_id,
                    "story_key": story_key,
                    "created_at": intent.polled_at,
                    "spans": [
                        {"field": span.field, "start": span.start, "end": span.end}
                        for span in alert.spans
                    ],
                },
            )
        if not rows:
            return {}
        # Either unique index may refuse a row. Inserted in key order, so that two
        # PostgreSQL transactions wait for each other's stories in the same order.
        statement = self._insert_ignoring_duplicates(ALERTS, None).returning(
            ALERTS.c.id, ALERTS.c.rule_id, ALERTS.c.item_id
        )
        ordered = sorted(
            rows.values(), key=lambda r: (r["rule_id"], r["story_key"] or "", r["item_id"])
        )
        rule_names = {rule_id: name for name, rule_id in rule_ids.items()}
        entry_keys = {item_id: key for key, item_id in item_ids.items()}
        return {
            (rule_names[row.rule_id], entry_keys[row.item_id]): row.id
            for row in conn.execute(statement, ordered)
        }

    def _write_deliveries(
        self,
        conn: Connection,
        intent: FeedUpdateIntent,
        inserted: Mapping[tuple[str, str], int],
    ) -> int:
        """Write the outbox rows of the alerts this commit inserted (same transaction).

        Immediate deliveries are unique per (subscriber, alert). A digest alert
        goes into the first offered window whose digest has not been claimed yet
        (a claimed digest is sealed), and an alert is in at most one digest of a
        subscriber. Deliveries to a disabled subscriber are written as failed, with
        the reason, so that nothing vanishes and ``deliveries retry`` can resend them.
        """
        wanted = [d for d in intent.deliveries if (d.rule, d.entry_key) in inserted]
        if not wanted:
            return 0
        now = intent.polled_at
        subscribers: dict[str, _Row] = {}
        for chunk in _chunks(dict.fromkeys(d.subscriber for d in wanted)):
            query = select(
                SUBSCRIBERS.c.id,
                SUBSCRIBERS.c.name,
                SUBSCRIBERS.c.disabled_at,
                SUBSCRIBERS.c.disabled_reason,
            ).where(SUBSCRIBERS.c.active.is_(True), SUBSCRIBERS.c.name.in_(chunk))
            subscribers.update((row.name, row) for row in conn.execute(query))
        written = 0
        immediate: list[dict[str, Any]] = []
        for d in wanted:
            sub = subscribers.get(d.subscriber)
            if sub is None:
                continue
            alert_id = inserted[(d.rule, d.entry_key)]
            if d.windows and sub.disabled_at is None:
                written += self._add_to_digest(conn, sub.id, alert_id, d, now)
                continue
            row = _new_delivery(sub.id, "alert", now) | {"alert_id": alert_id}
            if sub.disabled_at is not None:
                row |= {
                    "status": "failed",
                    "last_error": f"not sent: subscriber disabled ({sub.disabled_reason})",
                }
            immediate.append(row)
        if immediate:
            statement = self._insert_ignoring_duplicates(
                DELIVERIES, ["subscriber_id", "alert_id"]
            ).returning(DELIVERIES.c.id)
            written += len(list(conn.execute(statement, immediate)))
        return written

    def _write_notices(self, conn: Connection, notices: Sequence[Notice], now: datetime) -> int:
        """Queue operator notices (for active, enabled subscribers) in this transaction."""
        if not notices:
            return 0
        query = select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.name).where(
            SUBSCRIBERS.c.active.is_(True),
            SUBSCRIBERS.c.disabled_at.is_(None),
            SUBSCRIBERS.c.name.in_({n.subscriber for n in notices}),
        )
        ids = {row.name: row.id for row in conn.execute(query)}
        rows = [
            _new_delivery(ids[n.subscriber], "notice", now)
            | {"notice_subject": n.subject, "notice_text": n.text}
            for n in notices
            if n.subscriber in ids
        ]
        if rows:
            conn.execute(DELIVERIES.insert(), rows)
        return len(rows)

    def _add_to_digest(
        self, conn: Connection, subscriber_id: int, alert_id: int, d: DeliveryIntent, now: datetime
    ) -> int:
        for start, end in d.windows:
            _require_aware(start, "window start")
            _require_aware(end, "window end")
            conn.execute(
                self._insert_ignoring_duplicates(DELIVERIES, ["subscriber_id", "window_start"]),
                _new_delivery(subscriber_id, "digest", now)
                | {"window_start": start, "window_end": end, "next_attempt_at": end},
            )
            row = conn.execute(
                select(DELIVERIES.c.id, DELIVERIES.c.sealed, DELIVERIES.c.status)
                .where(
                    DELIVERIES.c.subscriber_id == subscriber_id,
                    DELIVERIES.c.window_start == start,
                )
                # PostgreSQL: wait for a dispatcher claiming it right now, then see it sealed.
                .with_for_update()
            ).one()
            if row.sealed or row.status != "pending":
                continue
            inserted = conn.execute(
                self._insert_ignoring_duplicates(
                    DELIVERY_ALERTS, ["subscriber_id", "alert_id"]
                ).returning(DELIVERY_ALERTS.c.id),
                {"delivery_id": row.id, "subscriber_id": subscriber_id, "alert_id": alert_id},
            )
            return len(list(inserted))
        # Every offered window has started sending (a dispatcher far ahead of this
        # poll's clock): deliver the alert on its own rather than lose it.
        result = conn.execute(
            self._insert_ignoring_duplicates(DELIVERIES, ["subscriber_id", "alert_id"]).returning(
                DELIVERIES.c.id
            ),
            _new_delivery(subscriber_id, "alert", now) | {"alert_id": alert_id},
        )
        return len(list(result))

    # ------------------------------------------------------------------ delivery

    def claim_due_deliveries(
        self, now: datetime, limit: int, lease_seconds: float, token: str
    ) -> list[DeliveryJob]:
        _require_aware(now, "now")
        if limit <= 0:
            return []
        until = now + timedelta(seconds=lease_seconds)
        due = (
            select(DELIVERIES.c.id)
            .join(SUBSCRIBERS, SUBSCRIBERS.c.id == DELIVERIES.c.subscriber_id)
            .where(
                DELIVERIES.c.status == "pending",
                DELIVERIES.c.next_attempt_at <= now,
                SUBSCRIBERS.c.active.is_(True),
                SUBSCRIBERS.c.disabled_at.is_(None),
            )
            .order_by(DELIVERIES.c.next_attempt_at, DELIVERIES.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=DELIVERIES)
        )
        with self._transaction("claiming due deliveries", write=True) as conn:
            ids = list(conn.scalars(due))
            if not ids:
                return []
            rows = list(
                conn.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.id.in_(ids))
                    .values(next_attempt_at=until, lease_owner=token, sealed=True, updated_at=now)
                    .returning(
                        DELIVERIES.c.id,
                        DELIVERIES.c.subscriber_id,
                        DELIVERIES.c.kind,
                        DELIVERIES.c.alert_id,
                        DELIVERIES.c.message_id,
                        DELIVERIES.c.attempts,
                        DELIVERIES.c.created_at,
                        DELIVERIES.c.window_start,
                        DELIVERIES.c.window_end,
                        DELIVERIES.c.notice_subject,
                        DELIVERIES.c.notice_text,
                    )
                )
            )
            names: dict[int, str] = {
                sub.id: sub.name
                for sub in conn.execute(
                    select(SUBSCRIBERS.c.id, SUBSCRIBERS.c.name).where(
                        SUBSCRIBERS.c.id.in_({row.subscriber_id for row in rows})
                    )
                )
            }
            members: dict[int, list[int]] = {row.id: [] for row in rows}
            for row in rows:
                if row.alert_id is not None:
                    members[row.id].append(row.alert_id)
            digests = [row.id for row in rows if row.kind == "digest"]
            for chunk in _chunks(digests):
                links = select(DELIVERY_ALERTS.c.delivery_id, DELIVERY_ALERTS.c.alert_id).where(
                    DELIVERY_ALERTS.c.delivery_id.in_(chunk)
                )
                for link in conn.execute(links):
                    members[link.delivery_id].append(link.alert_id)
            contents = self._alert_contents(conn, [a for ids_ in members.values() for a in ids_])
        order = {delivery_id: position for position, delivery_id in enumerate(ids)}
        rows.sort(key=lambda row: order[row.id])
        return [
            DeliveryJob(
                id=row.id,
                subscriber=names[row.subscriber_id],
                kind=row.kind,
                message_id=row.message_id,
                attempts=row.attempts,
                created_at=row.created_at,
                alerts=tuple(
                    sorted(
                        (contents[a] for a in members[row.id] if a in contents),
                        key=lambda c: (c.created_at, c.alert_id),
                    )
                ),
                window_start=row.window_start,
                window_end=row.window_end,
                lease_token=token,
                notice_subject=row.notice_subject or "",
                notice_text=row.notice_text or "",
            )
            for row in rows
        ]

    def _alert_contents(
        self, conn: Connection, alert_ids: Sequence[int]
    ) -> dict[int, AlertContent]:
        found: dict[int, AlertContent] = {}
        columns = (
            ALERTS.c.id,
            ALERTS.c.created_at,
            ALERTS.c.spans,
            RULES.c.name.label("rule"),
            RULES.c.query,
            ITEMS.c.id.label("item_id"),
            ITEMS.c.title,
            ITEMS.c.content_text,
            ITEMS.c.url,
            ITEMS.c.published,
            ITEMS.c.language,
            ITEMS.c.tags,
            FEEDS.c.name.label("feed"),
            func.coalesce(FEEDS.c.title, FEEDS.c.feed_title).label("feed_title"),
        )
        joined = (
            ALERTS.join(RULES, RULES.c.id == ALERTS.c.rule_id)
            .join(ITEMS, ITEMS.c.id == ALERTS.c.item_id)
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
        )
        for chunk in _chunks(dict.fromkeys(alert_ids)):
            query = select(*columns).select_from(joined).where(ALERTS.c.id.in_(chunk))
            for row in conn.execute(query):
                found[row.id] = AlertContent(
                    alert_id=row.id,
                    rule=row.rule,
                    rule_query=row.query,
                    item_id=row.item_id,
                    title=row.title,
                    content_text=row.content_text,
                    link=row.url,
                    feed=row.feed,
                    feed_title=row.feed_title,
                    published=row.published,
                    created_at=row.created_at,
                    spans=tuple(
                        Span(str(sp["field"]), int(sp["start"]), int(sp["end"]))
                        for sp in row.spans or ()
                    ),
                    language=row.language,
                    tags=tuple(row.tags or ()),
                )
        return found

    def record_delivery(
        self,
        delivery_id: int,
        token: str,
        *,
        status: str,
        now: datetime,
        next_attempt_at: datetime | None,
        code: int | None,
        error: str,
        disable_reason: str | None = None,
        notices: Sequence[Notice] = (),
    ) -> bool:
        _require_aware(now, "now")
        values: dict[str, Any] = {
            "status": status,
            "attempts": DELIVERIES.c.attempts + 1,
            "last_attempt_at": now,
            "next_attempt_at": next_attempt_at or now,
            "last_code": code,
            "last_error": error or None,
            "lease_owner": None,
            "updated_at": now,
        }
        if status == "sent":
            values["sent_at"] = now
        with self._transaction(f"recording delivery {delivery_id}", write=True) as conn:
            row = conn.execute(
                update(DELIVERIES)
                .where(DELIVERIES.c.id == delivery_id, DELIVERIES.c.lease_owner == token)
                .values(values)
                .returning(DELIVERIES.c.subscriber_id)
            ).first()
            if row is None:
                return False
            if disable_reason is not None:
                conn.execute(
                    update(SUBSCRIBERS)
                    .where(SUBSCRIBERS.c.id == row.subscriber_id)
                    .values(disabled_at=now, disabled_reason=disable_reason, updated_at=now)
                )
                conn.execute(
                    update(DELIVERIES)
                    .where(
                        DELIVERIES.c.subscriber_id == row.subscriber_id,
                        DELIVERIES.c.status == "pending",
                        DELIVERIES.c.lease_owner.is_(None),
                    )
                    .values(
                        status="failed",
                        last_error=f"not sent: subscriber disabled ({disable_reason})",
                        updated_at=now,
                    )
                )
                self._write_notices(conn, notices, now)
        return True

    def list_deliveries(
        self,
        status: str | None = None,
        subscriber: str | None = None,
        limit: int | None = None,
    ) -> list[DeliveryStatus]:
        query = (
            select(DELIVERIES, SUBSCRIBERS.c.name.label("subscriber"))
            .join(SUBSCRIBERS, SUBSCRIBERS.c.id == DELIVERIES.c.subscriber_id)
            .order_by(DELIVERIES.c.id.desc())
        )
        if status is not None:
            query = query.where(DELIVERIES.c.status == status)
        if subscriber is not None:
            query = query.where(SUBSCRIBERS.c.name == subscriber)
        with self._transaction("listing deliveries", write=False) as conn:
            rows = list(conn.execute(_limited(query, limit)))
            members: dict[int, list[int]] = {
                row.id: [row.alert_id] if row.alert_id is not None else [] for row in rows
            }
            for chunk in _chunks([row.id for row in rows if row.kind == "digest"]):
                links = select(DELIVERY_ALERTS.c.delivery_id, DELIVERY_ALERTS.c.alert_id).where(
                    DELIVERY_ALERTS.c.delivery_id.in_(chunk)
                )
                for link in conn.execute(links):
                    members[link.delivery_id].append(link.alert_id)
            info: dict[int, tuple[str, str]] = {}
            for chunk in _chunks(dict.fromkeys(a for ids in members.values() for a in ids)):
                query2 = (
                    select(ALERTS.c.id, RULES.c.name, ITEMS.c.title)
                    .select_from(
                        ALERTS.join(RULES, RULES.c.id == ALERTS.c.rule_id).join(
                            ITEMS, ITEMS.c.id == ALERTS.c.item_id
                        )
                    )
                    .where(ALERTS.c.id.in_(chunk))
                )
                info.update((r.id, (r.name, r.title)) for r in conn.execute(query2))
        out: list[DeliveryStatus] = []
        for row in rows:
            alerts = sorted(a for a in members[row.id] if a in info)
            out.append(
                DeliveryStatus(
                    id=row.id,
                    subscriber=row.subscriber,
                    kind=row.kind,
                    status=row.status,
                    attempts=row.attempts,
                    message_id=row.message_id,
                    created_at=row.created_at,
                    next_attempt_at=row.next_attempt_at if row.status == "pending" else None,
                    last_attempt_at=row.last_attempt_at,
                    sent_at=row.sent_at,
                    last_code=row.last_code,
                    last_error=row.last_error,
                    rules=tuple(dict.fromkeys(info[a][0] for a in alerts)),
                    title=info[alerts[0]][1] if alerts else (row.notice_subject or ""),
                    alerts=len(alerts),
                    window_start=row.window_start,
                    window_end=row.window_end,
                )
            )
        return out

    def retry_deliveries(
        self,
        now: datetime,
        ids: Sequence[int] | None = None,
        *,
        subscriber: str | None = None,
    ) -> tuple[list[int], list[str]]:
        _require_aware(now, "now")
        where = [DELIVERIES.c.status == "failed"]
        if ids is not None:
            where = [DELIVERIES.c.id.in_(list(ids)), DELIVERIES.c.status != "sent"]
        with self._transaction("requeueing deliveries", write=True) as conn:
            query = select(DELIVERIES.c.id, DELIVERIES.c.subscriber_id).where(*where)
            if subscriber is not None:
                query = query.join(
                    SUBSCRIBERS, SUBSCRIBERS.c.id == DELIVERIES.c.subscriber_id
                ).where(SUBSCRIBERS.c.name == subscriber)
            rows = list(conn.execute(query))
            if not rows:
                return [], []
            requeued = [row.id for row in rows]
            for chunk in _chunks(requeued):
                conn.execute(
                    update(DELIVERIES)
                    .where(DELIVERIES.c.id.in_(chunk))
                    .values(
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        lease_owner=None,
                        updated_at=now,
                    )
                )
            # Asking to resend is saying the receiver is back: enable its subscriber.
            enabled = list(
                conn.scalars(
                    update(SUBSCRIBERS)
                    .where(
                        SUBSCRIBERS.c.id.in_({row.subscriber_id for row in rows}),
                        SUBSCRIBERS.c.disabled_at.is_not(None),
                    )
                    .values(disabled_at=None, disabled_reason=None, updated_at=now)
                    .returning(SUBSCRIBERS.c.name)
                )
            )
        return sorted(requeued), sorted(enabled)

    def purge(
        self, items_before: datetime | None, deliveries_before: datetime | None
    ) -> dict[str, int]:
        """Delete old history; see :meth:`StorageType.purge`."""
        removed = {"items": 0, "alerts": 0, "deliveries": 0}
        with self._transaction("purging old history", write=True) as conn:
            if deliveries_before is not None:
                _require_aware(deliveries_before, "deliveries_before")
                done = select(DELIVERIES.c.id).where(
                    DELIVERIES.c.status.in_(("sent", "failed")),
                    DELIVERIES.c.updated_at < deliveries_before,
                )
                conn.execute(
                    DELIVERY_ALERTS.delete().where(DELIVERY_ALERTS.c.delivery_id.in_(done))
                )
                removed["deliveries"] += conn.execute(
                    DELIVERIES.delete().where(DELIVERIES.c.id.in_(done))
                ).rowcount
            if items_before is not None:
                _require_aware(items_before, "items_before")
                # An alert still waiting to be delivered keeps its item.
                waiting = union(
                    select(DELIVERIES.c.alert_id).where(
                        DELIVERIES.c.status == "pending", DELIVERIES.c.alert_id.is_not(None)
                    ),
                    select(DELIVERY_ALERTS.c.alert_id)
                    .join(DELIVERIES, DELIVERIES.c.id == DELIVERY_ALERTS.c.delivery_id)
                    .where(DELIVERIES.c.status == "pending"),
                ).subquery()
                kept = select(ALERTS.c.item_id).where(ALERTS.c.id.in_(select(waiting.c.alert_id)))
                old_items = (
                    select(ITEMS.c.id)
                    .where(ITEMS.c.first_seen < items_before, ITEMS.c.id.not_in(kept))
                    .scalar_subquery()
                )
                old_alerts = select(ALERTS.c.id).where(ALERTS.c.item_id.in_(old_items))
                conn.execute(
                    DELIVERY_ALERTS.delete().where(DELIVERY_ALERTS.c.alert_id.in_(old_alerts))
                )
                removed["deliveries"] += conn.execute(
                    DELIVERIES.delete().where(DELIVERIES.c.alert_id.in_(old_alerts))
                ).rowcount
                removed["alerts"] = conn.execute(
                    ALERTS.delete().where(ALERTS.c.item_id.in_(old_items))
                ).rowcount
                removed["items"] = conn.execute(
                    ITEMS.delete().where(ITEMS.c.id.in_(old_items))
                ).rowcount
        return removed

    def list_subscribers(self) -> list[SubscriberStatus]:
        counts = (
            select(
                DELIVERIES.c.subscriber_id,
                func.sum(case((DELIVERIES.c.status == "pending", 1), else_=0)).label("pending"),
                func.sum(case((DELIVERIES.c.status == "sent", 1), else_=0)).label("sent"),
                func.sum(case((DELIVERIES.c.status == "failed", 1), else_=0)).label("failed"),
                func.max(DELIVERIES.c.sent_at).label("last_sent_at"),
            )
            .group_by(DELIVERIES.c.subscriber_id)
            .subquery()
        )
        query = (
            select(SUBSCRIBERS, counts)
            .outerjoin(counts, counts.c.subscriber_id == SUBSCRIBERS.c.id)
            .order_by(SUBSCRIBERS.c.name)
        )
        with self._transaction("listing subscribers", write=False) as conn:
            rows = list(conn.execute(query))
        out: list[SubscriberStatus] = []
        for row in rows:
            try:
                mode = str(json.loads(row.spec).get("mode", "immediate"))
            except (ValueError, AttributeError):
                mode = "?"
            out.append(
                SubscriberStatus(
                    name=row.name,
                    channel=row.channel,
                    mode=mode,
                    active=row.active,
                    disabled_at=row.disabled_at,
                    disabled_reason=row.disabled_reason,
                    pending=int(row.pending or 0),
                    sent=int(row.sent or 0),
                    failed=int(row.failed or 0),
                    last_sent_at=_aware(row.last_sent_at),
                )
            )
        return out

    # ------------------------------------------------------------------ plumbing

    def _insert_ignoring_duplicates(self, table: Table, unique: list[str] | None) -> Insert:
        """INSERT … ON CONFLICT (unique) DO NOTHING, in this database's dialect;
        ``unique=None``: a conflict on any unique index is skipped."""
        if self._dialect == "postgresql":
            from sqlalchemy.dialects import postgresql  # imported by the engine anyway

            return postgresql.insert(table).on_conflict_do_nothing(index_elements=unique)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing(index_elements=unique)

    def _pg_lock(self, conn: Connection, key: int) -> None:
        """On PostgreSQL, serialise this transaction with others doing the same job."""
        if self._dialect == "postgresql":
            conn.execute(
                text(
                    "SELECT pg_advisory_xact_lock(:key, hashtext(coalesce(current_schema(), '')))"
                ),
                {"key": key},
            )

    @contextmanager
    def _transaction(self, what: str, *, write: bool) -> Iterator[Connection]:
        """One connection and one transaction, committed on success, rolled back on error.

        ``write`` makes SQLite take the write lock at BEGIN (``BEGIN IMMEDIATE``), so a
        writer waits for other writers up front instead of failing halfway through.
        """
        with self._serial:
            try:
                conn = self._engine.connect()
            except (SQLAlchemyError, sqlite3.Error) as exc:
                verb = "open" if self._dialect == "sqlite" else "connect to"
                raise StorageError(
                    f"{what} failed: cannot {verb} {self._where}: {_reason(exc)}"
                ) from exc
            try:
                with conn:
                    if write:
                        conn.execution_options(**{_WRITE: True})
                    with conn.begin():
                        yield conn
            except SQLAlchemyError as exc:
                raise self._translate(what, exc) from exc

    def _translate(self, what: str, exc: SQLAlchemyError) -> Exception:
        if (
            isinstance(exc, StatementError)
            and not isinstance(exc, DBAPIError)
            and isinstance(exc.orig, ValueError | TypeError)
        ):
            # Raised by our own code while binding (e.g. a naive datetime): a bug in the
            # caller, not a database failure.
            return type(exc.orig)(f"{what}: {exc.orig}")
        reason = _reason(exc)
        if self._dialect == "sqlite" and "database is locked" in reason:
            return StorageError(
                f"{what} failed: database is locked ({self._where}): another process "
                f"held the write lock for more than {self._busy_timeout:g} s"
            )
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return StorageError(f"{what} failed: lost the connection to {self._where}: {reason}")
        return StorageError(f"{what} failed on {self._where}: {reason}")

    # ------------------------------------------------------------------ daemon (HTTP face)

    def ping(self) -> None:
        with self._transaction("database check", write=False) as conn:
            conn.execute(text("SELECT 1"))

    def delivery_stats(self, now: datetime) -> tuple[int, float | None]:
        _require_aware(now, "now")
        query = select(func.count(), func.min(DELIVERIES.c.created_at)).where(
            DELIVERIES.c.status == "pending"
        )
        with self._transaction("reading delivery statistics", write=False) as conn:
            count, oldest = conn.execute(query).one()
        oldest_at = _aware(oldest)
        if oldest_at is None:
            return int(count), None
        return int(count), max((now - oldest_at).total_seconds(), 0.0)

    def search_items(
        self,
        *,
        feed: str | None,
        rule: str | None,
        since: datetime | None,
        q: str | None,
        limit: int | None,
        offset: int = 0,
    ) -> list[StoredItem]:
        query = (
            select(
                ITEMS.c.id,
                FEEDS.c.name.label("feed_name"),
                ITEMS.c.entry_key,
                ITEMS.c.url,
                ITEMS.c.title,
                ITEMS.c.content_text,
                ITEMS.c.author,
                ITEMS.c.published,
                ITEMS.c.first_seen,
                ITEMS.c.sort_at,
                ITEMS.c.tags,
                ITEMS.c.language,
            )
            .join(FEEDS, FEEDS.c.id == ITEMS.c.feed_id)
            .order_by(ITEMS.c.sort_at.desc(), ITEMS.c.id.desc())
        )
        if feed is not None:
            query = query.where(FEEDS.c.name == feed)
        if rule is not None:
            # (rule_id, item_id) is unique and item_id indexed: one probe per item.
            alerted = (
                select(ALERTS.c.id)
                .join(RULES, RULES.c.id == ALERTS.c.rule_id)
                .where(ALERTS.c.item_id == ITEMS.c.id, RULES.c.name == rule)
            )
            query = query.where(alerted.exists())
        if since is not None:
            _require_aware(since, "since")
            query = query.where(ITEMS.c.sort_at >= since)
        if q:
            # autoescape: % and _ in q are literal. SQLite's lower() and LIKE fold
            # ASCII only, so there Python folds both sides (Cyrillic, accents, ß).
            if self._dialect == "sqlite":
                folded = q.casefold()
                query = query.where(
                    or_(
                        func.feedwatch_casefold(ITEMS.c.title).contains(folded, autoescape=True),
                        func.feedwatch_casefold(ITEMS.c.content_text).contains(
                            folded, autoescape=True
                        ),
                    )
                )
            else:
                query = query.where(
                    or_(
                        ITEMS.c.title.icontains(q, autoescape=True),
                        ITEMS.c.content_text.icontains(q, autoescape=True),
                    )
                )
        query = _limited(query, limit).offset(max(offset, 0))
        with self._transaction("searching items", write=False) as conn:
            if q and self._dialect == "sqlite":
                raw = conn.connection.driver_connection
                assert raw is not None  # a checked-out connection has one
                raw.create_function(
                    "feedwatch_casefold",
                    1,
                    lambda value: value.casefold() if isinstance(value, str) else value,
                    deterministic=True,
                )
            rows = list(conn.execute(query))
        return [
            StoredItem(
                id=row.id,
                feed=row.feed_name,
                entry_key=row.entry_key,
                url=row.url,
                title=row.title,
                content_text=row.content_text,
                author=row.author,
                published=row.published,
                first_seen=row.first_seen,
                sort_at=row.sort_at,
                tags=tuple(row.tags or ()),
                language=row.language,
            )
            for row in rows
        ]


class _LeaseLost(Exception):
    """Raised inside commit_feed's transaction to roll it back: the lease moved on."""


# ---------------------------------------------------------------------- engines


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if memory:
        # One connection shared by every thread, or each would see its own empty database.
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin
        # (the "begin" hook below); pragmas then run outside any transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            if not memory:
                cursor.execute("PRAGMA journal_mode = WAL")
                # Safe in WAL mode: a crash may lose the last commits, never corrupt.
                cursor.execute("PRAGMA synchronous = NORMAL")
                # Checkpoint (copy the WAL into the database, with an fsync) every
                # 64 MiB of WAL rather than every 4 MiB: a first poll writes well over
                # 100 MiB, and each checkpoint stalls the writer. The WAL file keeps
                # the size it reached (the journal_size_limit below trims it back).
                cursor.execute(f"PRAGMA wal_autocheckpoint = {_WAL_CHECKPOINT_PAGES}")
                cursor.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: with a deferred BEGIN, a reader that
        # later writes can fail with "database is locked" without waiting.
        if conn.get_execution_options().get(_WRITE, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def _postgres_engine(url: URL) -> Engine:
    url = url.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT
    if "application_name" not in url.query:
        connect_args["application_name"] = "feedwatch"
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


def _describe(url: URL) -> str:
    """Where the database is, for messages (never the password)."""
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            return "in-memory SQLite database"
        return f"SQLite database {url.database}"
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


def _reason(exc: BaseException) -> str:
    """The driver's own message, on one line."""
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) else exc
    message = re.sub(r"\s+", " ", str(source)).strip()
    return message or type(source).__name__


# ---------------------------------------------------------------------- helpers


def _story_key(canonical_url: str) -> str:
    """An alert's story key: SHA-256 (hex) of the canonical URL, a bounded index key
    (migration 0005 computes the same for the alerts it backfills)."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {value.isoformat()}")


def _chunks(values: Iterable[_T], size: int = _CHUNK) -> Iterator[list[_T]]:
    """``values`` in lists of at most ``size`` (IN lists stay under SQLite's limit)."""
    chunk: list[_T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _limited(query: Select[Any], limit: int | None) -> Select[Any]:
    return query if limit is None else query.limit(max(limit, 0))


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _unique_names(specs: Sequence[_N], kind: str) -> list[_N]:
    """``specs`` as a list; a name given twice is a caller's bug (config validates names)."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ValueError(f"duplicate {kind} name {spec.name!r}")
        seen.add(spec.name)
    return list(specs)


_FEED_FOR_UPDATE_COLUMNS = (
    FEEDS.c.id,
    FEEDS.c.name,
    FEEDS.c.url,
    FEEDS.c.fetch_url,
    FEEDS.c.etag,
    FEEDS.c.last_modified,
    FEEDS.c.interval,
    FEEDS.c.consecutive_errors,
    FEEDS.c.failing_since,
    FEEDS.c.ttl_minutes,
    FEEDS.c.tags,
    FEEDS.c.body_hash,
    FEEDS.c.body_error,
)

#: A permanent redirect seen on this many polls in a row moves the feed.
MOVE_AFTER = 3


def _feed_for_update(row: _Row, *, lease_token: str | None) -> FeedForUpdate:
    return FeedForUpdate(
        id=row.id,
        name=row.name,
        url=row.fetch_url or row.url,
        etag=row.etag,
        last_modified=row.last_modified,
        interval=float(row.interval),
        consecutive_errors=row.consecutive_errors,
        failing_since=row.failing_since,
        ttl_minutes=row.ttl_minutes,
        tags=tuple(row.tags or ()),
        lease_token=lease_token,
        body_hash=row.body_hash,
        body_error=row.body_error,
    )


def _new_delivery(subscriber_id: int, kind: str, now: datetime) -> dict[str, Any]:
    """Column values of a new pending delivery, due now, with a fresh stable message id."""
    return {
        "subscriber_id": subscriber_id,
        "kind": kind,
        "message_id": f"msg_{uuid.uuid4().hex}",
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "updated_at": now,
        "sealed": False,
    }


def _aware(value: datetime | str | None) -> datetime | None:
    """An aggregate over a UTCDateTime column comes back untyped on SQLite: make it aware."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


_ITEM_COLUMNS = (
    "feed_id",
    "entry_key",
    "guid",
    "url",
    "canonical_url",
    "title",
    "content_html",
    "content_text",
    "author",
    "published",
    "updated",
    "first_seen",
    "last_changed_at",
    "sort_at",
    "tags",
    "language",
    "content_hash",
    "hash_changes",
)
_SQLITE_INSERT_ITEM = (
    f"INSERT INTO items ({', '.join(_ITEM_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_ITEM_COLUMNS))}) "
    "ON CONFLICT (feed_id, entry_key) DO NOTHING"
)


#: SQLite: pages of WAL between automatic checkpoints (SQLite's default: 1000).
_WAL_CHECKPOINT_PAGES = 16384
#: SQLite: a WAL file larger than this is truncated back to it after a checkpoint.
_WAL_SIZE_LIMIT = 64 * 1024 * 1024


def _sqlite_datetime(value: datetime | None) -> str | None:
    """An aware datetime as SQLAlchemy's SQLite DATETIME stores UTCDateTime values
    (naive UTC, always with microseconds), so both writers' text sorts as one."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()}: feedwatch stores aware UTC only")
        value = value.astimezone(UTC)
    # isoformat writes the year with 4 digits and, with timespec, always the microseconds.
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_insert_items(
    conn: Connection, feed_id: int, polled_at: datetime, changes: Sequence[ItemIntent]
) -> dict[str, int]:
    """Insert new items through the sqlite3 cursor of the open transaction.

    The hot path of a poll: SQLAlchemy's bind processing and statement caching
    cost about ten times what SQLite itself does per row. One ``executemany`` of
    ``INSERT ... ON CONFLICT DO NOTHING``; the ids of the rows really inserted are
    then read back as those above the largest id before it: the transaction holds
    SQLite's write lock, and SQLite gives a new row an id above every id in the
    table (until ids run out at 2**63, where the count check below fails loudly).
    """
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    when = _sqlite_datetime
    polled = when(polled_at)
    # The JSON SQLAlchemy would store (json.dumps of the list); a feed's items
    # mostly repeat a few tag sets.
    known_tags: dict[tuple[str, ...], str] = {(): "[]"}

    def tags_json(tags: tuple[str, ...]) -> str:
        found = known_tags.get(tags)
        if found is None:
            found = known_tags[tags] = json.dumps(list(tags))
        return found

    rows = [
        (
            feed_id,
            item.entry_key,
            item.guid,
            item.url,
            item.canonical_url,
            item.title,
            item.content_html,
            item.content_text,
            item.author,
            when(item.published),
            when(item.updated),
            polled if item.first_seen == polled_at else when(item.first_seen),
            polled,
            polled if item.sort_at == polled_at else when(item.sort_at),
            tags_json(item.tags),
            item.language,
            item.content_hash,
            change.hash_changes,
        )
        for change in changes
        for item in (change.item,)
    ]
    try:
        (before,) = cursor.execute("SELECT coalesce(max(id), 0) FROM items").fetchone()
        cursor.executemany(_SQLITE_INSERT_ITEM, rows)
        inserted = cursor.rowcount
        new_ids: dict[str, int] = {
            key: item_id
            for item_id, key in cursor.execute(
                "SELECT id, entry_key FROM items WHERE id > ? AND feed_id = ?", (before, feed_id)
            )
        }
    except sqlite3.Error as exc:
        raise StorageError(f"inserting items failed: {exc}") from exc
    finally:
        cursor.close()
    if len(new_ids) != inserted:  # pragma: no cover - ids ran out (2**63 rows)
        raise StorageError(f"inserting items failed: {inserted} rows, {len(new_ids)} found")
    return new_ids


#: Columns of ``feeds`` that hold UTC datetimes (stored as SQLAlchemy would).
_FEED_DATETIMES = frozenset(
    name for name, column in FEEDS.c.items() if isinstance(column.type, UTCDateTime)
)
_FEED_COLUMNS = frozenset(FEEDS.c.keys())


def _sqlite_update_feed(
    conn: Connection, feed_id: int, lease_token: str | None, values: Mapping[str, Any]
) -> bool:
    """The feed row's update through the sqlite3 cursor (the same text SQLAlchemy
    would store): once per feed per poll, mostly a 304, where SQLAlchemy's statement
    compilation and bind processing cost far more than SQLite's update. Only plain
    values (no SQL expressions); False if no row matched (the lease fence)."""
    names = list(values)
    unknown = set(names) - _FEED_COLUMNS
    if unknown:  # pragma: no cover - the columns come from _update_feed_state
        raise ValueError(f"not columns of feeds: {sorted(unknown)}")
    when = _sqlite_datetime
    params: list[Any] = [
        when(values[name]) if name in _FEED_DATETIMES else values[name] for name in names
    ]
    sql = "UPDATE feeds SET " + ", ".join(f'"{name}" = ?' for name in names) + " WHERE id = ?"
    params.append(feed_id)
    if lease_token is not None:
        sql += " AND lease_owner = ?"
        params.append(lease_token)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        return bool(cursor.execute(sql, params).rowcount)
    except sqlite3.Error as exc:
        raise StorageError(f"updating feed {feed_id} failed: {exc}") from exc
    finally:
        cursor.close()


def _item_values(item: Item) -> dict[str, Any]:
    """The columns of an item that come from the feed (the same for insert and update)."""
    return {
        "entry_key": item.entry_key,
        "guid": item.guid,
        "url": item.url,
        "canonical_url": item.canonical_url,
        "title": item.title,
        "content_html": item.content_html,
        "content_text": item.content_text,
        "author": item.author,
        "published": item.published,
        "updated": item.updated,
        "sort_at": item.sort_at,
        "tags": list(item.tags),
        "language": item.language,
        "content_hash": item.content_hash,
    }


def _sync_table(
    conn: Connection,
    table: Table,
    wanted: Mapping[str, Mapping[str, Any]],
    *,
    rename_by: str | None,
    new_row: Mapping[str, Any],
    extra: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> SyncReport:
    """Make ``table`` match ``wanted`` (name -> configured column values, incl. "active").

    Rows are never deleted: names missing from ``wanted`` are deactivated. A new
    name whose ``rename_by`` value equals that of an active row leaving the
    configuration takes over that row (keeping its history). ``new_row`` adds
    columns to inserted rows; ``extra(changed)`` adds columns to updated ones.
    """
    stored = {row.name: row for row in conn.execute(select(table).order_by(table.c.id))}
    leaving = [row for name, row in stored.items() if name not in wanted and row.active]
    takeover: dict[str, _Row] = {}
    if rename_by is not None:
        candidates: dict[Any, list[_Row]] = {}
        for row in leaving:
            candidates.setdefault(getattr(row, rename_by), []).append(row)
        for name, values in wanted.items():
            if name not in stored and candidates.get(values[rename_by]):
                takeover[name] = candidates[values[rename_by]].pop(0)
    taken = {row.id for row in takeover.values()}

    added: list[str] = []
    renamed: list[tuple[str, str]] = []
    updated: list[str] = []
    deactivated: list[str] = []
    reactivated: list[str] = []
    inserts: list[dict[str, Any]] = []
    for name, values in wanted.items():
        found = stored.get(name) or takeover.get(name)
        if found is None:
            inserts.append({"name": name, **new_row, **values})
            added.append(name)
            continue
        row = found
        changed = {
            column: value for column, value in values.items() if getattr(row, column) != value
        }
        if row.name != name:
            renamed.append((row.name, name))
        if any(column != "active" for column in changed):
            updated.append(name)
        if "active" in changed:
            (reactivated if changed["active"] else deactivated).append(name)
        if changed or row.name != name:
            assignments = {"name": name, **changed, **extra(changed)}
            conn.execute(update(table).where(table.c.id == row.id).values(assignments))
    for name, row in stored.items():
        if name not in wanted and row.active and row.id not in taken:
            conn.execute(update(table).where(table.c.id == row.id).values(active=False))
            deactivated.append(name)
    if inserts:
        # One executemany, in configuration order (so ids are what one insert per
        # name would give): a thousand feeds of a new database cost one statement,
        # not a thousand compiled ones. No insert can clash with the renames and
        # updates above: a new name is neither stored nor taken over.
        conn.execute(table.insert(), inserts)
    return SyncReport(
        added=tuple(added),
        renamed=tuple(renamed),
        updated=tuple(updated),
        deactivated=tuple(deactivated),
        reactivated=tuple(reactivated),
    )
