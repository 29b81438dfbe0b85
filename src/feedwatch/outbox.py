"""Pure decisions of alert delivery: who gets an alert, in which digest window,
and what happens after a send attempt. No I/O; the clock and the randomness
come in as arguments.

::

    plan_deliveries(subscribers, feed, alerts, now) -> DeliveryIntent per (subscriber, alert)
    digest_windows(schedule, at)                    -> the window ``at`` falls in, and the next ones
    after_attempt(result, attempts, now, jitter)    -> sent / retry at ... / failed

The retry schedule (:data:`RETRY_DELAYS`) spans more than a day: 5 s, 1 min,
5 min, 30 min, 2 h, 6 h, 12 h, 24 h, each stretched or shrunk by up to 20% of
jitter so that a receiver that comes back is not hit by every sender at once.
A ``Retry-After`` longer than the next delay is honoured (up to a day). After
the last delay the delivery stops as ``failed`` and stays visible; a permanent
failure (SMTP 5xx on the recipients, webhook 410) stops at once.
"""

from __future__ import annotations

import enum
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ._model import AlertIntent, DeliveryIntent, DigestSchedule, SendResult, SubscriberSpec

#: Seconds to wait after the 1st, 2nd, ... failed attempt; then give up.
RETRY_DELAYS: tuple[float, ...] = (5, 60, 300, 1800, 7200, 21600, 43200, 86400)
#: Jitter: each delay is multiplied by a factor in [1 - JITTER, 1 + JITTER].
JITTER = 0.2
#: The longest Retry-After honoured (a longer one is cut to this).
MAX_RETRY_AFTER = 86400.0
#: How many windows a digest intent offers (the alert's own and the next ones).
WINDOWS_OFFERED = 3


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What to record after one attempt."""

    status: DeliveryState
    #: When to try again (pending only).
    next_attempt_at: datetime | None
    code: int | None
    #: One line for people ("" on success).
    error: str
    #: Disable the subscriber (webhook 410), with this reason.
    disable_reason: str | None = None


def wants(sub: SubscriberSpec, rule: str, feed: str, feed_tags: Iterable[str]) -> bool:
    """Whether ``sub`` subscribes to alerts of ``rule`` on ``feed`` (with its tags)."""
    if sub.rules is not None and rule not in sub.rules:
        return False
    if sub.feeds is not None and feed not in sub.feeds:
        return False
    return sub.tags is None or not set(sub.tags).isdisjoint(feed_tags)


def plan_deliveries(
    subscribers: Sequence[SubscriberSpec],
    feed: str,
    feed_tags: Sequence[str],
    alerts: Sequence[AlertIntent],
    now: datetime,
) -> tuple[DeliveryIntent, ...]:
    """One intent per (subscriber, alert) the subscriber wants, in subscriber order.

    Storage writes them only for alerts that are new in the same commit, so a
    re-poll never delivers an alert twice.
    """
    out: list[DeliveryIntent] = []
    windows: dict[DigestSchedule, tuple[tuple[datetime, datetime], ...]] = {}
    for sub in subscribers:
        offered: tuple[tuple[datetime, datetime], ...] = ()
        if sub.mode == "digest" and sub.schedule is not None:
            offered = windows.get(sub.schedule) or windows.setdefault(
                sub.schedule, digest_windows(sub.schedule, now)
            )
        seen: set[tuple[str, str]] = set()
        for alert in alerts:
            key = (alert.rule, alert.entry_key)
            if key in seen or not wants(sub, alert.rule, feed, feed_tags):
                continue
            seen.add(key)
            out.append(DeliveryIntent(sub.name, alert.rule, alert.entry_key, offered))
    return tuple(out)


def digest_windows(
    schedule: DigestSchedule, at: datetime, count: int = WINDOWS_OFFERED
) -> tuple[tuple[datetime, datetime], ...]:
    """The window ``[start, end)`` holding ``at``, then the ``count - 1`` after it (UTC).

    Hourly windows end on the hour (UTC); daily ones at ``hour:minute`` local
    time in the schedule's zone (so a window is 23 or 25 hours long across a
    daylight-saving change).
    """
    if at.tzinfo is None:
        raise ValueError("digest_windows needs an aware datetime")
    at = at.astimezone(UTC)
    ends: list[datetime] = []
    if schedule.every == "hourly":
        end = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start = end - timedelta(hours=1)
        for _ in range(count):
            ends.append(end)
            end += timedelta(hours=1)
    else:
        zone = zoneinfo.ZoneInfo(schedule.tz)
        day = at.astimezone(zone).date() - timedelta(days=1)

        def end_on(d: date) -> datetime:
            local = datetime(d.year, d.month, d.day, schedule.hour, schedule.minute, tzinfo=zone)
            return local.astimezone(UTC)

        while end_on(day) <= at:
            day += timedelta(days=1)
        start = end_on(day - timedelta(days=1))
        for _ in range(count):
            ends.append(end_on(day))
            day += timedelta(days=1)
    out: list[tuple[datetime, datetime]] = []
    for end in ends:
        out.append((start, end))
        start = end
    return tuple(out)


def after_attempt(
    result: SendResult, attempts_before: int, now: datetime, jitter: float
) -> AttemptOutcome:
    """What to record after an attempt; ``attempts_before`` attempts had failed before it.

    ``jitter`` is a number in [0, 1) (``random.random()``), mapped to a factor in
    ``[1 - JITTER, 1 + JITTER]``.
    """
    if result.ok:
        # A partial success (some recipients refused) keeps its detail.
        return AttemptOutcome(DeliveryState.SENT, None, result.code, result.detail)
    error = result.detail or "failed"
    if result.permanent:
        reason = error if result.disable else None
        return AttemptOutcome(DeliveryState.FAILED, None, result.code, error, reason)
    failures = attempts_before + 1
    if failures > len(RETRY_DELAYS):
        return AttemptOutcome(
            DeliveryState.FAILED,
            None,
            result.code,
            f"{error} (gave up after {failures} attempts)",
        )
    delay = RETRY_DELAYS[failures - 1] * (1 - JITTER + 2 * JITTER * jitter)
    if result.retry_after is not None:
        delay = max(delay, min(result.retry_after, MAX_RETRY_AFTER))
    return AttemptOutcome(DeliveryState.PENDING, now + timedelta(seconds=delay), result.code, error)


__all__ = [
    "JITTER",
    "RETRY_DELAYS",
    "AttemptOutcome",
    "DeliveryState",
    "after_attempt",
    "digest_windows",
    "plan_deliveries",
    "wants",
]
