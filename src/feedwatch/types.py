"""Public read models: what ``feedwatch feeds``, ``items``, ``alerts`` and ``rules`` show.

Every datetime is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """A feed with its polling state."""

    name: str
    url: str
    title: str | None
    active: bool
    last_poll_at: datetime | None
    next_poll_at: datetime | None
    #: "ok", "not_modified", "rate_limited", "error", or None before the first poll.
    status: str | None
    item_count: int
    consecutive_errors: int
    last_error_kind: str | None
    last_error: str | None
    last_success_at: datetime | None
    #: Set when the feed was disabled (410, failing for too long), with why.
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    #: The URL polled instead of ``url`` after a permanent redirect.
    moved_to: str | None = None
    #: First error of the current run of errors.
    failing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredItem:
    """An item as stored."""

    id: int
    feed: str
    entry_key: str
    url: str | None
    title: str
    content_text: str
    author: str | None
    published: datetime | None
    first_seen: datetime
    sort_at: datetime
    tags: tuple[str, ...]
    language: str | None


@dataclass(frozen=True, slots=True)
class StoredSpan:
    field: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert: a rule matched an item."""

    id: int
    rule: str
    feed: str
    item_id: int
    item_title: str
    item_url: str | None
    created_at: datetime
    #: Where the rule matched; offsets into ``item_title`` or ``item_text``.
    spans: tuple[StoredSpan, ...]
    #: Plain text of the item's content (the "content" spans point into it).
    item_text: str


@dataclass(frozen=True, slots=True)
class PollResult:
    """The outcome of polling one feed once."""

    feed: str
    url: str
    #: "ok", "not_modified" or "error".
    status: str
    new: int = 0
    updated: int = 0
    alerts: int = 0
    #: Items the document held (after skipping bad entries).
    seen: int = 0
    #: Seconds from the start of the fetch to the commit.
    elapsed: float = 0.0
    http_status: int | None = None
    error_kind: str | None = None
    error: str | None = None
    #: Survivable problems (skipped entries, charset overrides, ...).
    warnings: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status == "error"


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """A rule with its alert counts: what ``feedwatch rules`` lists."""

    name: str
    query: str
    #: False for a rule no longer in the configuration (its alerts are kept).
    active: bool
    #: Alerts the rule has raised, ever.
    alerts: int
    #: Alerts raised in the last 7 days.
    alerts_7d: int
    #: When the newest alert was raised; None if it never matched.
    last_alert_at: datetime | None


@dataclass(frozen=True, slots=True)
class ItemForMatching:
    """A stored item with what a rule can look at, read to backtest a rule."""

    id: int
    #: Name of the item's feed.
    feed: str
    url: str | None
    title: str
    #: Plain text of the content (spans of the "content" field point into it).
    content_text: str
    author: str | None
    sort_at: datetime
    #: The item's own tags (categories), as stored.
    tags: tuple[str, ...]
    #: The feed's tags from feeds.yaml, as last synced.
    feed_tags: tuple[str, ...]
    language: str | None


@dataclass(frozen=True, slots=True)
class MatchedSpan:
    """Where a rule matched: a range of one field, with the text it covers."""

    #: "title", "content", "author" or "feed".
    field: str
    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class RuleTrial:
    """The outcome of ``feedwatch rules try``: a query against text given by hand."""

    query: str
    matched: bool
    spans: tuple[MatchedSpan, ...] = ()


@dataclass(frozen=True, slots=True)
class BacktestMatch:
    """A stored item that a backtested query matches."""

    item_id: int
    feed: str
    title: str
    url: str | None
    sort_at: datetime
    spans: tuple[MatchedSpan, ...]
    #: Plain text of the content (the "content" spans point into it).
    item_text: str


@dataclass(frozen=True, slots=True)
class Backtest:
    """The outcome of ``feedwatch rules test``: a query run over stored items.

    Nothing is written: a backtest raises no alert.
    """

    #: The configured rule tested, or None for an ad-hoc query.
    rule: str | None
    query: str
    #: Items older than this (by ``sort_at``) were not looked at; None: all.
    since: datetime | None
    #: Items looked at.
    scanned: int
    #: Items matched (all of them, not only those in ``matches``).
    matched: int
    #: Matched items per feed: (feed, count), most first, then by name.
    per_feed: tuple[tuple[str, int], ...]
    #: The first matches, newest first (at most the limit asked for).
    matches: tuple[BacktestMatch, ...]


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """One outbox row, for ``feedwatch deliveries``."""

    id: int
    subscriber: str
    #: "alert" or "digest".
    kind: str
    #: "pending", "sent" or "failed".
    status: str
    attempts: int
    message_id: str
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    sent_at: datetime | None
    last_code: int | None
    last_error: str | None
    #: Rule names of the alerts in it (one for an immediate delivery).
    rules: tuple[str, ...]
    #: Title of its (first) item.
    title: str
    #: Number of alerts in it.
    alerts: int
    window_start: datetime | None = None
    window_end: datetime | None = None


@dataclass(frozen=True, slots=True)
class SubscriberStatus:
    """A subscriber with its delivery counts, for ``feedwatch subscribers``."""

    name: str
    channel: str
    mode: str
    active: bool
    disabled_at: datetime | None
    disabled_reason: str | None
    pending: int
    sent: int
    failed: int
    last_sent_at: datetime | None
