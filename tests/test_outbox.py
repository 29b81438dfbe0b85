"""The pure side of delivery: who gets what, digest windows, the retry schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from feedwatch._model import AlertIntent, DigestSchedule, SendResult, SubscriberSpec
from feedwatch.outbox import (
    JITTER,
    RETRY_DELAYS,
    DeliveryState,
    after_attempt,
    digest_windows,
    plan_deliveries,
    wants,
)

NOW = datetime(2026, 11, 28, 10, 17, 3, tzinfo=UTC)


def sub(name: str = "desk", **kw: object) -> SubscriberSpec:
    return SubscriberSpec(name=name, channel="webhook", spec_json="{}", **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- who


def test_wants_filters_by_rule_feed_and_tag() -> None:
    everything = sub()
    assert wants(everything, "ai", "un-news", ())
    only_ai = sub(rules=("ai",))
    assert wants(only_ai, "ai", "un-news", ())
    assert not wants(only_ai, "ct", "un-news", ())
    only_feed = sub(feeds=("unoct",))
    assert wants(only_feed, "ct", "unoct", ())
    assert not wants(only_feed, "ct", "un-news", ())
    tagged = sub(tags=("ru", "cis"))
    assert wants(tagged, "ct", "ipa-cis", ("cis",))
    assert not wants(tagged, "ct", "un-news", ("un", "en"))
    assert not wants(tagged, "ct", "un-news", ())


def test_plan_gives_one_intent_per_subscriber_and_alert() -> None:
    alerts = [
        AlertIntent("ai", "k1"),
        AlertIntent("ct", "k1"),
        AlertIntent("ai", "k2"),
        AlertIntent("ai", "k1"),  # the same alert twice is planned once
    ]
    planned = plan_deliveries(
        [sub("desk", rules=("ai",)), sub("chat"), sub("other", feeds=("x",))],
        "un-news",
        ("un",),
        alerts,
        NOW,
    )
    assert [(d.subscriber, d.rule, d.entry_key) for d in planned] == [
        ("desk", "ai", "k1"),
        ("desk", "ai", "k2"),
        ("chat", "ai", "k1"),
        ("chat", "ct", "k1"),
        ("chat", "ai", "k2"),
    ]
    assert all(d.windows == () for d in planned)


def test_plan_offers_digest_windows_from_the_alert_time_on() -> None:
    digest = sub("morning", mode="digest", schedule=DigestSchedule("hourly"))
    (planned,) = plan_deliveries([digest], "f", (), [AlertIntent("ai", "k")], NOW)
    starts = [start for start, _end in planned.windows]
    assert starts[0] <= NOW < planned.windows[0][1]
    assert len(planned.windows) >= 2
    assert starts == sorted(starts)


# --------------------------------------------------------------------------- windows


def test_hourly_windows_are_whole_utc_hours() -> None:
    windows = digest_windows(DigestSchedule("hourly"), NOW, count=3)
    assert windows == (
        (NOW.replace(minute=0, second=0), NOW.replace(hour=11, minute=0, second=0)),
        (NOW.replace(hour=11, minute=0, second=0), NOW.replace(hour=12, minute=0, second=0)),
        (NOW.replace(hour=12, minute=0, second=0), NOW.replace(hour=13, minute=0, second=0)),
    )


def test_an_alert_exactly_at_a_window_end_is_in_the_next_window() -> None:
    at = datetime(2026, 11, 28, 11, 0, tzinfo=UTC)
    (first, *_rest) = digest_windows(DigestSchedule("hourly"), at)
    assert first == (at, at + timedelta(hours=1))


def test_daily_windows_end_at_the_local_time_of_their_zone() -> None:
    # 08:00 in Moscow is 05:00 UTC; 10:17 UTC is after it, so the window ends tomorrow.
    schedule = DigestSchedule("daily", 8, 0, "Europe/Moscow")
    (start, end), (start2, end2) = digest_windows(schedule, NOW, count=2)
    assert start == datetime(2026, 11, 28, 5, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
    assert (start2, end2) == (end, datetime(2026, 11, 30, 5, 0, tzinfo=UTC))
    early = datetime(2026, 11, 28, 4, 59, tzinfo=UTC)
    assert digest_windows(schedule, early, count=1)[0][1] == start


def test_daily_windows_follow_daylight_saving_changes() -> None:
    # Europe/Paris leaves summer time on 2026-10-25: that day's window has 25 hours.
    schedule = DigestSchedule("daily", 8, 0, "Europe/Paris")
    at = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    (start, end), (_start2, end2) = digest_windows(schedule, at, count=2)
    assert start == datetime(2026, 10, 24, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert end == datetime(2026, 10, 25, 7, 0, tzinfo=UTC)  # 08:00 CET
    assert end - start == timedelta(hours=25)
    assert end2 - end == timedelta(hours=24)


def test_windows_need_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        digest_windows(DigestSchedule("hourly"), datetime(2026, 1, 1))


# --------------------------------------------------------------------------- retries


def test_success_is_sent() -> None:
    outcome = after_attempt(SendResult(ok=True, code=250, detail="250 ok"), 3, NOW, 0.5)
    assert outcome.status is DeliveryState.SENT
    assert outcome.next_attempt_at is None
    assert outcome.code == 250


def test_failures_back_off_along_the_schedule_with_bounded_jitter() -> None:
    failure = SendResult(ok=False, code=500, detail="500 Internal Server Error")
    for attempts, delay in enumerate(RETRY_DELAYS):
        low = after_attempt(failure, attempts, NOW, 0.0)
        high = after_attempt(failure, attempts, NOW, 0.999999)
        mid = after_attempt(failure, attempts, NOW, 0.5)
        assert low.status is DeliveryState.PENDING
        assert low.next_attempt_at is not None
        assert high.next_attempt_at is not None
        assert mid.next_attempt_at == NOW + timedelta(seconds=delay)
        assert low.next_attempt_at == NOW + timedelta(seconds=delay * (1 - JITTER))
        assert high.next_attempt_at <= NOW + timedelta(seconds=delay * (1 + JITTER))
        assert low.error == "500 Internal Server Error"


def test_the_schedule_spans_more_than_a_day_then_gives_up() -> None:
    assert sum(RETRY_DELAYS) > 86400
    assert list(RETRY_DELAYS) == sorted(RETRY_DELAYS)
    failure = SendResult(ok=False, detail="connection refused")
    outcome = after_attempt(failure, len(RETRY_DELAYS), NOW, 0.5)
    assert outcome.status is DeliveryState.FAILED
    assert outcome.next_attempt_at is None
    assert f"gave up after {len(RETRY_DELAYS) + 1} attempts" in outcome.error


def test_retry_after_longer_than_the_backoff_is_honoured_up_to_a_day() -> None:
    asked = SendResult(ok=False, code=429, retry_after=600.0, detail="429")
    assert after_attempt(asked, 0, NOW, 0.5).next_attempt_at == NOW + timedelta(seconds=600)
    shorter = SendResult(ok=False, code=503, retry_after=1.0, detail="503")
    assert after_attempt(shorter, 2, NOW, 0.5).next_attempt_at == NOW + timedelta(seconds=300)
    huge = SendResult(ok=False, code=429, retry_after=10 * 86400.0, detail="429")
    assert after_attempt(huge, 0, NOW, 0.5).next_attempt_at == NOW + timedelta(days=1)


def test_permanent_failures_stop_at_once_and_410_disables() -> None:
    refused = SendResult(ok=False, permanent=True, code=550, detail="550 no such user")
    outcome = after_attempt(refused, 0, NOW, 0.5)
    assert outcome.status is DeliveryState.FAILED
    assert outcome.disable_reason is None
    gone = SendResult(ok=False, permanent=True, disable=True, code=410, detail="410 Gone")
    outcome = after_attempt(gone, 0, NOW, 0.5)
    assert outcome.status is DeliveryState.FAILED
    assert outcome.disable_reason == "410 Gone"
