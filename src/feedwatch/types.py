"""Public read models: what ``feedwatch feeds``, ``items`` and ``alerts`` show.

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
    #: "ok", "not_modified", "error", or None before the first poll.
    status: str | None
    item_count: int
    consecutive_errors: int
    last_error_kind: str | None
    last_error: str | None
    last_success_at: datetime | None


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
