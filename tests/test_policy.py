"""The polling policy of ``feedwatch.decide``, as tables: a fixed ``now``, explicit jitter.

``schedule_next`` is pure (no clock, no randomness of its own), so every rule is
a row here: the plain interval and its jitter, the server's freshness hints
(RSS ttl, Cache-Control max-age, Expires), rate limits, error backoff and its
cap, disabling (410, failing too long), the adaptive interval, and the absence
of a burst after an outage (simulated with an injected clock).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from fakes import FakeClock

from feedwatch._model import SchedulerOptions
from feedwatch.decide import (
    MAX_RETRY_AFTER,
    NextPoll,
    Outcome,
    ServerHints,
    adaptive_interval,
    schedule_next,
    server_hints,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
INTERVAL = 900.0
HOUR = 3600.0
DAY = 86400.0
#: The defaults: jitter 10%, min 1m, max 1d, backoff cap 6h, disable after 7 days.
POLICY = SchedulerOptions()
ADAPTIVE = replace(POLICY, adaptive=True)


def decide(
    outcome: Outcome = Outcome.OK,
    *,
    interval: float = INTERVAL,
    policy: SchedulerOptions = POLICY,
    jitter: float = 0.0,
    **kwargs: Any,
) -> NextPoll:
    return schedule_next(
        NOW, interval=interval, policy=policy, outcome=outcome, jitter=jitter, **kwargs
    )


def delay(outcome: Outcome = Outcome.OK, **kwargs: Any) -> float:
    """Seconds from ``NOW`` to the next poll."""
    return (decide(outcome, **kwargs).at - NOW).total_seconds()


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


# --------------------------------------------------------------------------- OK and jitter


@pytest.mark.parametrize(
    ("policy_jitter", "jitter", "expected"),
    [
        pytest.param(0.1, 0.0, INTERVAL, id="no-jitter-drawn"),
        pytest.param(0.1, 0.5, INTERVAL * 1.05, id="half-of-10pct"),
        pytest.param(0.1, 0.999, INTERVAL * 1.0999, id="almost-all-of-10pct"),
        pytest.param(0.0, 0.999, INTERVAL, id="policy-without-jitter-is-exact"),
        pytest.param(0.25, 0.5, INTERVAL * 1.125, id="half-of-25pct"),
        pytest.param(1.0, 0.5, INTERVAL * 1.5, id="half-of-100pct"),
    ],
)
def test_ok_waits_the_interval_plus_jitter(
    policy_jitter: float, jitter: float, expected: float
) -> None:
    policy = replace(POLICY, jitter=policy_jitter)

    decision = decide(policy=policy, jitter=jitter)

    assert (decision.at - NOW).total_seconds() == pytest.approx(expected, abs=1e-6)
    assert decision.disable_reason is None


@pytest.mark.parametrize("jitter", [0.0, 0.001, 0.25, 0.5, 0.75, 0.999])
def test_jitter_adds_at_most_the_policy_fraction(jitter: float) -> None:
    assert INTERVAL <= delay(jitter=jitter) < INTERVAL * 1.1


# --------------------------------------------------------------------------- server hints


@pytest.mark.parametrize(
    ("headers", "ttl_minutes", "expected"),
    [
        pytest.param({}, None, ServerHints(), id="nothing"),
        pytest.param({}, 60, ServerHints(ttl=3600.0), id="rss-ttl-in-minutes"),
        pytest.param({}, 0, ServerHints(), id="rss-ttl-zero-ignored"),
        pytest.param(
            {"cache-control": "max-age=600"}, None, ServerHints(max_age=600.0), id="max-age"
        ),
        pytest.param(
            {"cache-control": "public, max-age=600, must-revalidate"},
            None,
            ServerHints(max_age=600.0),
            id="max-age-among-directives",
        ),
        pytest.param(
            {"cache-control": 'max-age="600"'}, None, ServerHints(max_age=600.0), id="quoted"
        ),
        pytest.param(
            {"cache-control": "PUBLIC, MAX-AGE=600"}, None, ServerHints(max_age=600.0), id="upper"
        ),
        pytest.param(
            {"cache-control": "max-age = 600 ,private"},
            None,
            ServerHints(max_age=600.0),
            id="spaces",
        ),
        pytest.param(
            {"cache-control": "s-maxage=600"}, None, ServerHints(), id="s-maxage-not-ours"
        ),
        pytest.param(
            {"cache-control": "max-age=soon"}, None, ServerHints(), id="max-age-not-number"
        ),
        pytest.param(
            {"cache-control": "no-cache, max-age=600"}, None, ServerHints(), id="no-cache-wins"
        ),
        pytest.param(
            {"cache-control": "max-age=600, no-store"}, None, ServerHints(), id="no-store-wins"
        ),
        pytest.param(
            {"cache-control": "max-age=600, No-Cache"}, None, ServerHints(), id="no-cache-upper"
        ),
        pytest.param(
            {
                "date": http_date(NOW - timedelta(minutes=10)),
                "expires": http_date(NOW + timedelta(minutes=20)),
            },
            None,
            ServerHints(expires_in=1800.0),
            id="expires-relative-to-date-header",
        ),
        pytest.param(
            {"expires": http_date(NOW + timedelta(minutes=45))},
            None,
            ServerHints(expires_in=2700.0),
            id="expires-relative-to-now-without-date",
        ),
        pytest.param(
            {"date": "yesterday-ish", "expires": http_date(NOW + timedelta(minutes=45))},
            None,
            ServerHints(expires_in=2700.0),
            id="unparseable-date-means-now",
        ),
        pytest.param(
            {"expires": http_date(NOW - timedelta(hours=1))},
            None,
            ServerHints(expires_in=0.0),
            id="expires-in-the-past-is-zero",
        ),
        pytest.param({"expires": "0"}, None, ServerHints(), id="expires-zero-unparseable"),
        pytest.param({"expires": "next tuesday"}, None, ServerHints(), id="expires-garbage"),
        pytest.param(
            {"cache-control": "max-age=60", "expires": http_date(NOW + timedelta(hours=2))},
            None,
            ServerHints(max_age=60.0),
            id="max-age-wins-over-expires",
        ),
        pytest.param(
            {"cache-control": "max-age=0", "expires": http_date(NOW + timedelta(hours=2))},
            None,
            ServerHints(max_age=0.0),
            id="max-age-zero-still-wins-over-expires",
        ),
        pytest.param(
            {"cache-control": "max-age=600", "expires": http_date(NOW + timedelta(hours=2))},
            30,
            ServerHints(ttl=1800.0, max_age=600.0),
            id="ttl-and-max-age-together",
        ),
        pytest.param(
            {
                "cache-control": "no-cache, max-age=600",
                "expires": http_date(NOW + timedelta(hours=2)),
            },
            None,
            ServerHints(),
            id="no-cache-also-ignores-expires",
        ),
        pytest.param(
            {"expires": "Sat Nov 28 13:00:00 2026"},
            None,
            ServerHints(expires_in=3600.0),
            id="expires-in-asctime-form",
        ),
    ],
)
def test_server_hints(
    headers: dict[str, str], ttl_minutes: int | None, expected: ServerHints
) -> None:
    assert server_hints(headers, ttl_minutes, NOW) == expected


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        pytest.param(ServerHints(), INTERVAL, id="no-hints-interval"),
        pytest.param(ServerHints(ttl=HOUR), HOUR, id="ttl-longer-stretches"),
        pytest.param(ServerHints(max_age=2 * HOUR), 2 * HOUR, id="max-age-longer-stretches"),
        pytest.param(ServerHints(expires_in=3 * HOUR), 3 * HOUR, id="expires-longer-stretches"),
        pytest.param(ServerHints(max_age=60.0), INTERVAL, id="shorter-does-not-shorten"),
        pytest.param(ServerHints(ttl=600.0), INTERVAL, id="shorter-ttl-does-not-shorten"),
        pytest.param(ServerHints(expires_in=0.0), INTERVAL, id="already-expired"),
        pytest.param(ServerHints(max_age=0.0), INTERVAL, id="max-age-zero"),
        pytest.param(ServerHints(ttl=1800.0, max_age=2700.0), 2700.0, id="longest-hint-counts"),
        pytest.param(ServerHints(expires_in=10 * DAY), DAY, id="capped-at-max-interval"),
        pytest.param(ServerHints(ttl=DAY + 1), DAY, id="just-over-the-cap"),
    ],
)
def test_freshness_stretches_but_never_shortens(hints: ServerHints, expected: float) -> None:
    assert delay(hints=hints) == expected


def test_freshness_and_jitter_compose() -> None:
    assert delay(hints=ServerHints(max_age=2 * HOUR), jitter=0.5) == pytest.approx(2 * HOUR * 1.05)


def test_headers_to_next_poll() -> None:
    hints = server_hints({"cache-control": "public, max-age=7200"}, None, NOW)

    assert decide(hints=hints) == NextPoll(NOW + timedelta(hours=2))


# --------------------------------------------------------------------------- rate limited


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        pytest.param(7200.0, 7200.0, id="longer-retry-after-is-waited"),
        pytest.param(901.0, 901.0, id="just-longer"),
        pytest.param(10.0, INTERVAL, id="shorter-retry-after-waits-the-interval"),
        pytest.param(0.0, INTERVAL, id="zero-waits-the-interval"),
        pytest.param(None, INTERVAL, id="absent-waits-the-interval"),
        pytest.param(DAY, DAY, id="a-day"),
        pytest.param(1e9, MAX_RETRY_AFTER.total_seconds(), id="capped-at-a-day"),
    ],
)
def test_rate_limited_waits_as_told(retry_after: float | None, expected: float) -> None:
    assert delay(Outcome.RATE_LIMITED, retry_after=retry_after) == expected


def test_rate_limited_is_never_an_error_and_never_disables() -> None:
    decision = decide(
        Outcome.RATE_LIMITED,
        retry_after=7200.0,
        consecutive_errors=50,
        failing_since=NOW - timedelta(days=365),
    )

    assert decision == NextPoll(NOW + timedelta(hours=2))


def test_rate_limited_never_polls_sooner_than_the_interval() -> None:
    policy = replace(POLICY, max_interval=30 * DAY)

    assert delay(Outcome.RATE_LIMITED, interval=2 * DAY, policy=policy) >= 2 * DAY


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        pytest.param(0, INTERVAL, id="0-counts-as-first"),
        pytest.param(1, INTERVAL, id="1x"),
        pytest.param(2, 2 * INTERVAL, id="2x"),
        pytest.param(3, 4 * INTERVAL, id="4x"),
        pytest.param(4, 8 * INTERVAL, id="8x"),
        pytest.param(5, 16 * INTERVAL, id="16x"),
        pytest.param(6, 6 * HOUR, id="32x-capped-at-6h"),
        pytest.param(7, 6 * HOUR, id="cap-held"),
        pytest.param(17, 6 * HOUR, id="exponent-limit"),
        pytest.param(50, 6 * HOUR, id="50-errors"),
        pytest.param(10_000, 6 * HOUR, id="10000-errors"),
    ],
)
def test_error_backoff(errors: int, expected: float) -> None:
    assert delay(Outcome.ERROR, consecutive_errors=errors) == expected


@pytest.mark.parametrize(
    ("interval", "max_backoff", "errors", "expected"),
    [
        pytest.param(INTERVAL, HOUR, 3, HOUR, id="smaller-cap-reached-at-3"),
        pytest.param(INTERVAL, HOUR, 50, HOUR, id="smaller-cap-held"),
        pytest.param(8 * HOUR, 6 * HOUR, 1, 8 * HOUR, id="interval-above-cap-first-error"),
        pytest.param(8 * HOUR, 6 * HOUR, 50, 8 * HOUR, id="interval-above-cap-is-the-cap"),
        pytest.param(60.0, 6 * HOUR, 50, 6 * HOUR, id="short-interval-reaches-cap"),
    ],
)
def test_error_backoff_cap(
    interval: float, max_backoff: float, errors: int, expected: float
) -> None:
    policy = replace(POLICY, max_backoff=max_backoff)

    assert delay(Outcome.ERROR, interval=interval, policy=policy, consecutive_errors=errors) == (
        expected
    )


def test_error_backoff_never_shrinks_and_holds_the_cap() -> None:
    delays = [delay(Outcome.ERROR, consecutive_errors=n) for n in range(1, 51)]

    assert delays == sorted(delays)
    assert delays[:6] == [INTERVAL * 2**n for n in range(5)] + [6 * HOUR]
    assert set(delays[5:]) == {6 * HOUR}


def test_error_backoff_gets_jitter_too() -> None:
    assert delay(Outcome.ERROR, consecutive_errors=50, jitter=0.5) == pytest.approx(6 * HOUR * 1.05)


@pytest.mark.parametrize(
    ("failing_for", "disable_after", "detail", "reason"),
    [
        pytest.param(None, 7 * DAY, "HTTP 500", None, id="first-error"),
        pytest.param(timedelta(days=1), 7 * DAY, "HTTP 500", None, id="one-day"),
        pytest.param(timedelta(days=7, seconds=-1), 7 * DAY, "HTTP 500", None, id="just-short"),
        pytest.param(
            timedelta(days=7),
            7 * DAY,
            "HTTP 500 Internal Server Error",
            "failing for 7.0 days (HTTP 500 Internal Server Error); the feed was disabled",
            id="exactly-disable-after",
        ),
        pytest.param(
            timedelta(days=9, hours=12),
            7 * DAY,
            "",
            "failing for 9.5 days (errors); the feed was disabled",
            id="longer-without-detail",
        ),
        pytest.param(
            timedelta(hours=36),
            DAY,
            "connection refused",
            "failing for 1.5 days (connection refused); the feed was disabled",
            id="shorter-disable-after",
        ),
    ],
)
def test_errors_disable_only_after_disable_after(
    failing_for: timedelta | None, disable_after: float, detail: str, reason: str | None
) -> None:
    policy = replace(POLICY, disable_after=disable_after)
    since = None if failing_for is None else NOW - failing_for

    decision = decide(
        Outcome.ERROR, policy=policy, consecutive_errors=20, failing_since=since, detail=detail
    )

    assert decision.disable_reason == reason
    # The next poll time is the backoff all the same.
    assert decision.at == NOW + timedelta(hours=6)


# --------------------------------------------------------------------------- gone


@pytest.mark.parametrize(
    ("detail", "reason"),
    [
        pytest.param("HTTP 410 Gone", "gone: HTTP 410 Gone; the feed was disabled", id="detail"),
        pytest.param("", "gone: HTTP 410; the feed was disabled", id="no-detail"),
    ],
)
def test_gone_disables_at_once(detail: str, reason: str) -> None:
    decision = decide(Outcome.GONE, detail=detail)

    assert decision.disable_reason == reason
    assert decision.at > NOW


# --------------------------------------------------------------------------- adaptive


def hours_ago(*hours: float) -> list[datetime]:
    return [NOW - timedelta(hours=h) for h in hours]


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        pytest.param(hours_ago(0, 1, 2, 3), 1800.0, id="hourly-half-the-gap"),
        pytest.param(hours_ago(3, 0, 2, 1), 1800.0, id="unsorted"),
        pytest.param(hours_ago(0, 1, 3, 6), 3600.0, id="median-of-1h-2h-3h"),
        pytest.param(hours_ago(0, 1, 2, 4, 8, 16), 3600.0, id="median-of-odd-gaps"),
        pytest.param(hours_ago(0, 1, 2, 4), 1800.0, id="median-of-1h-1h-2h"),
        pytest.param(hours_ago(0, 2), None, id="two-samples-too-few"),
        pytest.param([], None, id="no-samples"),
        pytest.param(hours_ago(0, 0, 2, 4), 3600.0, id="duplicates-dropped"),
        pytest.param(hours_ago(1, 1, 1, 1), None, id="identical-times"),
        pytest.param(hours_ago(0, 0, 2), None, id="duplicates-leave-too-few-gaps"),
        pytest.param(hours_ago(0, 0.001, 0.002, 0.003), 60.0, id="clamped-to-min"),
        pytest.param(hours_ago(0, 240, 480, 720), DAY, id="clamped-to-max"),
    ],
)
def test_adaptive_interval(times: list[datetime], expected: float | None) -> None:
    result = adaptive_interval(times, ADAPTIVE)
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    ("policy", "outcome", "times", "expected"),
    [
        pytest.param(ADAPTIVE, Outcome.OK, hours_ago(0, 1, 2, 3), 1800.0, id="enabled"),
        pytest.param(ADAPTIVE, Outcome.OK, hours_ago(0, 1), INTERVAL, id="too-few-samples"),
        pytest.param(ADAPTIVE, Outcome.OK, hours_ago(5, 5, 5), INTERVAL, id="identical"),
        pytest.param(POLICY, Outcome.OK, hours_ago(0, 1, 2, 3), INTERVAL, id="disabled-flag"),
        pytest.param(
            ADAPTIVE, Outcome.OK, hours_ago(0, 0.01, 0.02, 0.03), 60.0, id="busy-feed-min"
        ),
        pytest.param(
            replace(ADAPTIVE, min_interval=600.0),
            Outcome.OK,
            hours_ago(0, 0.01, 0.02, 0.03),
            600.0,
            id="busy-feed-configured-min",
        ),
        pytest.param(ADAPTIVE, Outcome.OK, hours_ago(0, 72, 144), DAY, id="quiet-feed-max"),
        pytest.param(
            ADAPTIVE, Outcome.ERROR, hours_ago(0, 1, 2, 3), INTERVAL, id="errors-use-interval"
        ),
        pytest.param(
            ADAPTIVE,
            Outcome.RATE_LIMITED,
            hours_ago(0, 1, 2, 3),
            INTERVAL,
            id="rate-limited-uses-interval",
        ),
    ],
)
def test_adaptive_schedule(
    policy: SchedulerOptions, outcome: Outcome, times: list[datetime], expected: float
) -> None:
    assert delay(outcome, policy=policy, publish_times=times) == pytest.approx(expected)


def test_adaptive_interval_still_stretched_by_freshness() -> None:
    hints = ServerHints(max_age=2 * HOUR)

    assert delay(policy=ADAPTIVE, publish_times=hours_ago(0, 1, 2, 3), hints=hints) == 2 * HOUR


# --------------------------------------------------------------------------- no burst


class Scheduler:
    """A minimal scheduler loop over one feed: every tick, poll it while it is due."""

    def __init__(self, clock: FakeClock, interval: float, tick: float) -> None:
        self.clock = clock
        self.interval = interval
        self.tick = tick
        self.due = clock()
        self.polls: list[datetime] = []

    def run_until(self, end: datetime) -> None:
        while self.clock() < end:
            now = self.clock()
            # A scheduler that counted from the previous due time would poll
            # several times here after an outage.
            while self.due <= now:
                self.polls.append(now)
                self.due = schedule_next(
                    now, interval=self.interval, policy=POLICY, outcome=Outcome.OK, jitter=0.0
                ).at
            self.clock.advance(seconds=self.tick)


def gaps(times: list[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in itertools.pairwise(times)]


def test_no_burst_after_an_outage() -> None:
    clock = FakeClock(NOW)
    scheduler = Scheduler(clock, INTERVAL, tick=60.0)

    scheduler.run_until(NOW + timedelta(hours=1))
    before = list(scheduler.polls)
    # The daemon is down for three days: its clock moves, nothing runs.
    restart = clock.advance(days=3)
    scheduler.run_until(restart + timedelta(hours=1, seconds=1))
    after = scheduler.polls[len(before) :]

    assert before == [NOW + timedelta(seconds=INTERVAL * n) for n in range(4)]
    # The overdue feed (due three days ago) is polled once on restart ...
    assert after[0] == restart
    assert after.count(restart) == 1
    # ... and then at its cadence, counted from the restart.
    assert after == [restart + timedelta(seconds=INTERVAL * n) for n in range(5)]
    assert set(gaps(after)) == {INTERVAL}
