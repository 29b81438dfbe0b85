"""Pure decisions of a poll: which items are new or changed, when to poll next.

Does not fetch, parse, store or read the clock: every input, time and
randomness included, comes in as an argument, so each rule here is a table test.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from . import __version__
from ._model import EntryForUpdate, Item, ItemChange, ItemIntent, SchedulerOptions
from .exceptions import ErrorKind

#: An item whose content hash keeps changing (a feed that embeds the current
#: time, say) is updated at most this many times, so it cannot flood anyone.
#: Same rule as lemon24/reader (its issue #179).
HASH_CHANGED_LIMIT = 24

#: Transient errors back off exponentially from the feed's interval up to this cap;
#: a feed is never parked forever.
MAX_ERROR_BACKOFF = timedelta(hours=6)

#: A server's Retry-After is honoured up to this long.
MAX_RETRY_AFTER = timedelta(days=1)


def body_fingerprint(content: bytes, url: str, content_type: str | None) -> str:
    """What a document's parse depends on, hashed: the bytes, the URL relative links
    resolve against, the declared charset (in the Content-Type) and this version of
    feedwatch (an upgrade may parse differently, so it parses everything once more).

    A 200 whose fingerprint equals the stored one repeats the document already
    handled: it is not parsed again (many servers send no validators, so they
    never answer 304).
    """
    digest = hashlib.sha256(content)
    for part in (url, content_type or "", __version__):
        digest.update(b"\0" + part.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def decide_items(items: Iterable[Item], stored: Mapping[str, EntryForUpdate]) -> list[ItemIntent]:
    """New items, and stored items whose content changed; unchanged ones drop out.

    An edit the feed announces (a later "updated" date) is always taken. A change
    of the content hash alone is taken at most ``HASH_CHANGED_LIMIT`` times in a row.
    """
    intents: list[ItemIntent] = []
    for item in items:
        old = stored.get(item.entry_key)
        if old is None:
            intents.append(ItemIntent(item, ItemChange.NEW))
        elif old.content_hash == item.content_hash:
            continue
        elif _announced(item.updated, old.updated):
            intents.append(ItemIntent(item, ItemChange.UPDATED, old.id, hash_changes=0))
        elif old.hash_changes < HASH_CHANGED_LIMIT:
            intents.append(
                ItemIntent(item, ItemChange.UPDATED, old.id, hash_changes=old.hash_changes + 1)
            )
    return intents


def _announced(new: datetime | None, old: datetime | None) -> bool:
    return new is not None and (old is None or new > old)


def next_poll_at(
    now: datetime,
    interval: float,
    *,
    consecutive_errors: int = 0,
    error_kind: ErrorKind | None = None,
    retry_after: float | None = None,
    jitter: float = 0.0,
) -> datetime:
    """When to poll a feed next.

    ``consecutive_errors`` counts this poll's error too. ``jitter`` is a number
    in [0, 1) drawn by the caller; it spreads up to 10% of the delay so feeds
    configured together do not stay in lock-step.
    """
    base = timedelta(seconds=interval)
    if retry_after is not None:
        # 429/503 with Retry-After: wait as told (RFC 9110 §10.2.3), bounded.
        delay = min(max(timedelta(seconds=retry_after), base), MAX_RETRY_AFTER)
    elif error_kind is not None and consecutive_errors > 0:
        exponent = min(consecutive_errors - 1, 16)
        delay = min(base * (2**exponent), max(MAX_ERROR_BACKOFF, base))
    else:
        delay = base
    return now + delay + delay * (0.1 * jitter)


# --------------------------------------------------------------------------- polling policy


class Outcome(enum.Enum):
    """What a poll came to, for scheduling. The three kinds of trouble are kept apart."""

    #: 200 or 304: the feed is well.
    OK = "ok"
    #: 429 or 503: the server asks us to slow down. Not an error: wait as told.
    RATE_LIMITED = "rate_limited"
    #: Anything else that failed: back off exponentially, capped; never park forever.
    ERROR = "error"
    #: 410 Gone: the feed is gone for good.
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class ServerHints:
    """How long the server says the document stays fresh (seconds), when it says so."""

    #: RSS ``<ttl>`` (minutes in the document, seconds here).
    ttl: float | None = None
    #: ``Cache-Control: max-age``.
    max_age: float | None = None
    #: ``Expires`` minus the response's ``Date`` (or now).
    expires_in: float | None = None

    def freshness(self) -> float | None:
        values = [v for v in (self.ttl, self.max_age, self.expires_in) if v is not None]
        return max(values) if values else None


@dataclass(frozen=True, slots=True)
class NextPoll:
    """When to poll next, and whether the feed is to be disabled instead."""

    at: datetime
    #: Set when the feed is to be disabled (410, or failing for too long).
    disable_reason: str | None = None


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|=|$)", re.IGNORECASE)

#: Fewest publication times the adaptive interval needs.
ADAPTIVE_MIN_SAMPLES = 3


def server_hints(headers: Mapping[str, str], ttl_minutes: int | None, now: datetime) -> ServerHints:
    """The freshness a response and its document announce (``headers`` lower-case)."""
    max_age: float | None = None
    cache_control = headers.get("cache-control", "")
    m = _MAX_AGE.search(cache_control)
    no_cache = _NO_CACHE.search(cache_control) is not None
    if m is not None and not no_cache:
        max_age = float(m.group(1))
    expires_in: float | None = None
    expires = _http_date(headers.get("expires"))
    # Cache-Control (a max-age, or no-cache/no-store) wins over Expires (RFC 9111 §5.3).
    if expires is not None and m is None and not no_cache:
        date = _http_date(headers.get("date")) or now
        expires_in = max((expires - date).total_seconds(), 0.0)
    ttl = float(ttl_minutes) * 60 if ttl_minutes is not None and ttl_minutes > 0 else None
    return ServerHints(ttl=ttl, max_age=max_age, expires_in=expires_in)


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # The obsolete asctime form has no zone; HTTP dates are always GMT (RFC 9110 §5.6.7).
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def adaptive_interval(publish_times: Sequence[datetime], policy: SchedulerOptions) -> float | None:
    """Half the median gap between the feed's recent publications, within the
    policy's bounds; None without enough history."""
    times = sorted(publish_times)
    if len(times) < ADAPTIVE_MIN_SAMPLES:
        return None
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    gaps = [g for g in gaps if g > 0]
    if len(gaps) < ADAPTIVE_MIN_SAMPLES - 1:
        return None
    return min(max(statistics.median(gaps) / 2, policy.min_interval), policy.max_interval)


def schedule_next(
    now: datetime,
    *,
    interval: float,
    policy: SchedulerOptions,
    outcome: Outcome,
    jitter: float,
    consecutive_errors: int = 0,
    failing_since: datetime | None = None,
    retry_after: float | None = None,
    hints: ServerHints = ServerHints(),
    publish_times: Sequence[datetime] = (),
    detail: str = "",
) -> NextPoll:
    """When to poll a feed next (a pure function of its inputs).

    ``consecutive_errors`` counts this poll's error too; ``failing_since`` is the
    first error of the current run of errors (this poll's time if it is the
    first). ``jitter`` in [0, 1) adds up to ``policy.jitter`` of the delay. The
    delay is counted from ``now``, so a feed overdue by several intervals (an
    outage, a stopped daemon) is polled once and then resumes its cadence: no burst.
    """
    base = interval
    if policy.adaptive and outcome is Outcome.OK:
        adaptive = adaptive_interval(publish_times, policy)
        if adaptive is not None:
            base = adaptive
    disable: str | None = None
    if outcome is Outcome.GONE:
        disable = f"gone: {detail or 'HTTP 410'}; the feed was disabled"
        delay = policy.max_interval
    elif outcome is Outcome.RATE_LIMITED:
        asked = retry_after if retry_after is not None else base
        # Never sooner than the interval; a Retry-After counts up to a day beyond it.
        delay = min(max(asked, base), max(MAX_RETRY_AFTER.total_seconds(), base))
    elif outcome is Outcome.ERROR:
        since = failing_since or now
        if (now - since).total_seconds() >= policy.disable_after:
            days = (now - since).total_seconds() / 86400
            disable = f"failing for {days:.1f} days ({detail or 'errors'}); the feed was disabled"
        exponent = min(max(consecutive_errors, 1) - 1, 16)
        delay = min(base * (2**exponent), max(policy.max_backoff, base))
    else:
        fresh = hints.freshness()
        # Never poll more often than the server says the document stays fresh,
        # nor less often than the longest interval.
        delay = min(max(base, fresh), max(policy.max_interval, base)) if fresh else base
    return NextPoll(now + timedelta(seconds=delay * (1 + policy.jitter * jitter)), disable)
