"""Pure decisions of a poll: which items are new or changed, when to poll next.

Does not fetch, parse, store or read the clock: every input, time and
randomness included, comes in as an argument, so each rule here is a table test.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from ._model import EntryForUpdate, Item, ItemChange, ItemIntent
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
