"""The polling policy through the real pipeline, fetcher and storage.

A real :class:`~feedwatch.fetch.HttpFetcher` talks to a :class:`LoopbackServer`
on 127.0.0.1 (the only network the fetcher is allowed); the real parser,
pipeline and SQL storage (``storage``: SQLite, then PostgreSQL) do the rest.
Feeds are claimed as the daemon claims them (``claim_due_feeds`` at the
injected clock's time); the clock only moves when a test moves it, and
``rand`` is fixed at 0 so the next poll times are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, cast

import pytest
from fakes import Entry, FakeClock, rss
from loopback import Exchange, Handler, LoopbackServer, send

from feedwatch._model import FeedForUpdate, FeedSpec, FetchOptions, SchedulerOptions
from feedwatch.config import parse_config
from feedwatch.core import make_app
from feedwatch.fetch import HttpFetcher
from feedwatch.pipeline import Pipeline
from feedwatch.prepare import InlinePrepare
from feedwatch.rules import compile_rules
from feedwatch.storage.base import StorageType
from feedwatch.storage.sql import SqlStorage
from feedwatch.types import FeedStatus, PollResult

T0 = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = 900.0
DAY = 86400.0
#: Loopback only: everything else stays forbidden by the fetcher's guard.
LOCAL = FetchOptions(allow_networks=("127.0.0.1/32",), timeout=10.0, connect_timeout=5.0)
POLICY = SchedulerOptions(disable_after=3 * DAY)
DOC = rss(Entry("e1", "First entry", "Some text."), title="Loopback feed")
RSS = {"Content-Type": "application/rss+xml; charset=utf-8"}


class Rig:
    """Real storage, a real fetcher against the loopback server, a fake clock, rand 0."""

    def __init__(
        self,
        storage: SqlStorage,
        server: LoopbackServer,
        paths: Mapping[str, str],
        *,
        policy: SchedulerOptions = POLICY,
    ) -> None:
        self.storage = storage
        self.server = server
        self.policy = policy
        self.clock = FakeClock(T0)
        self.specs = {
            name: FeedSpec(name=name, url=server.url(path), interval=INTERVAL)
            for name, path in paths.items()
        }
        self.sync()

    def sync(self, **changes: Any) -> None:
        """Store the feeds' configuration, ``changes`` applied to every feed."""
        self.specs = {n: replace(s, **changes) for n, s in self.specs.items()}
        self.storage.sync_config(list(self.specs.values()), [], [], self.clock())

    def claim(self) -> list[str]:
        """Names of the feeds the daemon would claim now (they stay claimed)."""
        return [f.name for f in self._claim()]

    def _claim(self) -> list[FeedForUpdate]:
        return self.storage.claim_due_feeds(self.clock(), 100, 60.0, "test-lease")

    def poll_due(self) -> list[PollResult]:
        """Claim the due feeds at the clock's time and poll them, as the daemon does."""
        return self._poll(self._claim())

    def poll(self, name: str = "a") -> PollResult:
        """Poll one feed now, due or not (as ``feedwatch poll`` does)."""
        (result,) = self._poll(self.storage.feeds_for_poll([name]))
        return result

    def poll_when_due(self, name: str = "a") -> PollResult:
        """Move the clock to the feed's next poll time, then claim and poll it."""
        next_at = self.status(name).next_poll_at
        assert next_at is not None
        self.clock.now = max(self.clock.now, next_at)
        (result,) = [r for r in self.poll_due() if r.feed == name]
        return result

    def _poll(self, feeds: Sequence[FeedForUpdate]) -> list[PollResult]:
        async def run() -> list[PollResult]:
            # One fetcher per run: its connection pool belongs to this event loop.
            async with HttpFetcher(LOCAL, clock=self.clock) as fetcher:
                pipeline = Pipeline(
                    cast(StorageType, self.storage),
                    fetcher,
                    InlinePrepare(compile_rules(())),
                    clock=self.clock,
                    rand=lambda: 0.0,
                    policy=self.policy,
                )
                return await pipeline.poll(feeds)

        return asyncio.run(run())

    def status(self, name: str = "a") -> FeedStatus:
        (found,) = [f for f in self.storage.list_feeds(True) if f.name == name]
        return found

    def urls_polled(self, name: str = "a") -> list[str]:
        return [f.url for f in self.storage.feeds_for_poll([name])]


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with LoopbackServer() as srv:
        yield srv


def paths(server: LoopbackServer) -> list[str]:
    return [r.target for r in server.requests]


# --------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize(
    ("status", "retry_after", "wait"),
    [
        pytest.param(429, "7200", 7200.0, id="429-seconds"),
        pytest.param(
            429, format_datetime(T0 + timedelta(hours=3), usegmt=True), 3 * 3600.0, id="429-date"
        ),
        pytest.param(503, "3600", 3600.0, id="503-seconds"),
        pytest.param(503, "60", INTERVAL, id="503-shorter-than-interval"),
        pytest.param(429, None, INTERVAL, id="429-without-retry-after"),
    ],
)
def test_rate_limited_is_not_an_error_and_waits(
    storage: SqlStorage, server: LoopbackServer, status: int, retry_after: str | None, wait: float
) -> None:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    server.reply("/feed.xml", status, b"slow down", headers)
    rig = Rig(storage, server, {"a": "/feed.xml"})

    (result,) = rig.poll_due()

    assert (result.status, result.http_status) == ("rate_limited", status)
    feed = rig.status()
    assert (feed.status, feed.consecutive_errors, feed.failing_since) == ("rate_limited", 0, None)
    assert (feed.disabled_at, feed.disabled_reason) == (None, None)
    assert feed.next_poll_at == T0 + timedelta(seconds=wait)
    # Not claimed a second before the time the server asked for; claimed at it.
    rig.clock.now = T0 + timedelta(seconds=wait - 1)
    assert rig.claim() == []
    rig.clock.now = T0 + timedelta(seconds=wait)
    assert rig.claim() == ["a"]


def test_rate_limits_leave_a_failing_run_alone(storage: SqlStorage, server: LoopbackServer) -> None:
    rig = Rig(storage, server, {"a": "/feed.xml"})
    server.reply("/feed.xml", 500)
    rig.poll_due()
    server.reply("/feed.xml", 429, headers={"Retry-After": "7200"})

    for _ in range(5):
        assert rig.poll_when_due().status == "rate_limited"

    feed = rig.status()
    assert (feed.consecutive_errors, feed.failing_since, feed.disabled_at) == (1, T0, None)
    # Rate limits for longer than disable_after never disable a feed.
    rig.clock.now = T0 + timedelta(days=4)
    rig.poll_when_due()
    assert rig.status().disabled_at is None


def test_retry_after_once_the_server_is_fine_again(
    storage: SqlStorage, server: LoopbackServer
) -> None:
    rig = Rig(storage, server, {"a": "/feed.xml"})
    server.reply("/feed.xml", 429, headers={"Retry-After": "7200"})
    rig.poll_due()
    server.reply("/feed.xml", 200, DOC, RSS)

    result = rig.poll_when_due()

    assert (result.status, result.new) == ("ok", 1)
    assert rig.clock() == T0 + timedelta(hours=2)
    feed = rig.status()
    assert (feed.status, feed.last_error, feed.next_poll_at) == (
        "ok",
        None,
        rig.clock() + timedelta(seconds=INTERVAL),
    )


# --------------------------------------------------------------------------- errors and disabling


def test_errors_then_disable_then_config_change_reenables(
    storage: SqlStorage, server: LoopbackServer
) -> None:
    rig = Rig(storage, server, {"a": "/feed.xml", "b": "/b.xml"})
    server.reply("/feed.xml", 500, b"oops")
    server.reply("/b.xml", 200, DOC, RSS)

    assert sorted(r.status for r in rig.poll_due()) == ["error", "ok"]
    feed = rig.status()
    assert (feed.status, feed.consecutive_errors, feed.failing_since) == ("error", 1, T0)
    assert feed.next_poll_at == T0 + timedelta(seconds=INTERVAL)

    # The run of errors keeps its first time; the backoff doubles.
    rig.poll_when_due()
    rig.poll_when_due()
    feed = rig.status()
    assert (feed.consecutive_errors, feed.failing_since) == (3, T0)
    assert feed.next_poll_at == rig.clock() + timedelta(seconds=4 * INTERVAL)

    # One success clears the run.
    server.reply("/feed.xml", 200, DOC, RSS)
    rig.poll_when_due()
    feed = rig.status()
    assert (feed.status, feed.consecutive_errors, feed.failing_since) == ("ok", 0, None)

    # A new run of errors starts from its own first error ...
    server.reply("/feed.xml", 500, b"oops")
    rig.clock.advance(hours=1)
    started = rig.clock()
    polls = [rig.poll_when_due()]
    while rig.status().disabled_at is None:
        assert rig.clock() - started < timedelta(days=4), "never disabled"
        assert rig.status().failing_since == started
        polls.append(rig.poll_when_due())
    # ... and the feed is disabled on the first poll at least disable_after into it.
    disabled = rig.status()
    assert disabled.disabled_at == rig.clock()
    assert rig.clock() - started >= timedelta(days=3)
    assert rig.clock() - started < timedelta(days=3) + timedelta(hours=6, seconds=1)
    assert disabled.disabled_reason is not None
    assert disabled.disabled_reason.startswith("failing for 3.")
    assert "HTTP 500" in disabled.disabled_reason
    assert disabled.disabled_reason.endswith("; the feed was disabled")
    assert disabled.failing_since == started
    assert all(p.status == "error" for p in polls)

    # Disabled: never claimed, not polled by `feedwatch poll`, listed with the reason.
    rig.clock.advance(days=30)
    assert "a" not in rig.claim()
    assert rig.urls_polled("a") == []
    assert [f.name for f in storage.feeds_for_poll()] == ["b"]
    (listed,) = [f for f in storage.list_feeds() if f.name == "a"]
    assert (listed.disabled_at, listed.disabled_reason) == (
        disabled.disabled_at,
        disabled.disabled_reason,
    )

    # Changing the feed's configuration gives it a new try.
    rig.sync(interval=1800.0)
    feed = rig.status()
    assert (feed.disabled_at, feed.disabled_reason, feed.failing_since) == (None, None, None)
    assert rig.urls_polled("a") == [server.url("/feed.xml")]
    rig.clock.advance(days=1)
    assert "a" in rig.claim()


def disable_by_errors(rig: Rig) -> None:
    rig.server.reply("/feed.xml", 500, b"oops")
    for _ in range(100):
        rig.poll_when_due()
        if rig.status().disabled_at is not None:
            return
    raise AssertionError("never disabled")


def test_reenabled_feed_is_due_at_once(storage: SqlStorage, server: LoopbackServer) -> None:
    rig = Rig(storage, server, {"a": "/feed.xml"})
    disable_by_errors(rig)

    rig.clock.advance(seconds=1)
    rig.sync(interval=1800.0)

    assert rig.claim() == ["a"]


def test_reenabled_feed_backs_off_from_scratch(storage: SqlStorage, server: LoopbackServer) -> None:
    rig = Rig(storage, server, {"a": "/feed.xml"})
    disable_by_errors(rig)
    rig.sync(interval=1800.0)

    assert rig.status().consecutive_errors == 0
    rig.poll()
    assert rig.status().next_poll_at == rig.clock() + timedelta(seconds=1800)


def test_gone_disables_at_once(storage: SqlStorage, server: LoopbackServer) -> None:
    server.reply("/feed.xml", 410, b"gone")
    rig = Rig(storage, server, {"a": "/feed.xml"})

    (result,) = rig.poll_due()

    assert (result.status, result.http_status) == ("error", 410)
    feed = rig.status()
    assert feed.disabled_at == T0
    assert feed.disabled_reason == "gone: HTTP 410 Gone; the feed was disabled"
    rig.clock.advance(days=60)
    assert rig.claim() == []
    assert rig.urls_polled() == []
    # A new URL in the configuration brings it back, due at once.
    server.reply("/feed2.xml", 200, DOC, RSS)
    rig.specs["a"] = replace(rig.specs["a"], url=server.url("/feed2.xml"))
    rig.sync()
    assert rig.status().disabled_at is None
    assert rig.claim() == ["a"]


# --------------------------------------------------------------------------- freshness hints


def conditional(body: bytes, etag: str, headers: Mapping[str, str] | None = None) -> Handler:
    """A handler answering 304 to a matching If-None-Match, else 200 with ``body``."""

    def handle(exchange: Exchange) -> None:
        extra = dict(headers or {})
        if exchange.headers.get("If-None-Match") == etag:
            send(exchange, 304, headers={"ETag": etag, **extra})
        else:
            send(exchange, 200, body, {"ETag": etag, **RSS, **extra})

    return handle


def test_max_age_stretches_the_next_poll_also_on_304(
    storage: SqlStorage, server: LoopbackServer
) -> None:
    server.route("/feed.xml", conditional(DOC, '"v1"', {"Cache-Control": "max-age=7200"}))
    rig = Rig(storage, server, {"a": "/feed.xml"})

    assert rig.poll_due()[0].status == "ok"
    assert rig.status().next_poll_at == T0 + timedelta(hours=2)
    assert rig.poll_when_due().status == "not_modified"
    assert rig.status().next_poll_at == T0 + timedelta(hours=4)


def test_rss_ttl_still_counts_on_304(storage: SqlStorage, server: LoopbackServer) -> None:
    doc = DOC.replace(
        b"<description>test</description>", b"<description>t</description><ttl>60</ttl>"
    )
    server.route("/feed.xml", conditional(doc, '"v1"'))
    rig = Rig(storage, server, {"a": "/feed.xml"})

    rig.poll_due()
    assert rig.status().next_poll_at == T0 + timedelta(hours=1)
    assert rig.poll_when_due().status == "not_modified"
    assert rig.status().next_poll_at == T0 + timedelta(hours=2)


# --------------------------------------------------------------------------- permanent redirects


@pytest.mark.parametrize("code", [301, 308])
def test_permanent_redirect_moves_the_feed_after_three_polls(
    storage: SqlStorage, server: LoopbackServer, code: int
) -> None:
    server.redirect("/old.xml", server.url("/new.xml"), code)
    server.reply("/new.xml", 200, DOC, RSS)
    rig = Rig(storage, server, {"a": "/old.xml"})

    for n in (1, 2):
        assert rig.poll_when_due().status == "ok"
        assert rig.status().moved_to is None, f"moved after {n} polls"
        assert rig.urls_polled() == [server.url("/old.xml")]
    assert rig.poll_when_due().status == "ok"

    assert rig.status().moved_to == server.url("/new.xml")
    assert rig.status().url == server.url("/old.xml")  # the configured URL stays
    assert rig.urls_polled() == [server.url("/new.xml")]
    assert paths(server) == ["/old.xml", "/new.xml"] * 3
    # The 4th poll goes to the new URL directly, and the feed stays moved.
    assert rig.poll_when_due().status == "ok"
    assert paths(server)[6:] == ["/new.xml"]
    assert rig.status().moved_to == server.url("/new.xml")


@pytest.mark.parametrize(
    "hops",
    [
        pytest.param([("/old.xml", 302)], id="302"),
        pytest.param([("/old.xml", 307)], id="307"),
        pytest.param([("/old.xml", 301), ("/mid.xml", 302)], id="301-then-302"),
        pytest.param([("/old.xml", 302), ("/mid.xml", 301)], id="302-then-301"),
        pytest.param([("/old.xml", 308), ("/mid.xml", 307)], id="308-then-307"),
    ],
)
def test_temporary_redirect_anywhere_never_moves_the_feed(
    storage: SqlStorage, server: LoopbackServer, hops: list[tuple[str, int]]
) -> None:
    targets = [path for path, _ in hops[1:]] + ["/new.xml"]
    for (path, code), target in zip(hops, targets, strict=True):
        server.redirect(path, server.url(target), code)
    server.reply("/new.xml", 200, DOC, RSS)
    rig = Rig(storage, server, {"a": "/old.xml"})

    for _ in range(5):
        assert rig.poll_when_due().status == "ok"

    assert rig.status().moved_to is None
    assert rig.urls_polled() == [server.url("/old.xml")]
    assert len(server.requests_to("/old.xml")) == 5


def test_moves_count_polls_in_a_row(storage: SqlStorage, server: LoopbackServer) -> None:
    server.redirect("/old.xml", server.url("/new.xml"), 301)
    server.reply("/new.xml", 200, DOC, RSS)
    rig = Rig(storage, server, {"a": "/old.xml"})

    rig.poll_when_due()
    rig.poll_when_due()
    # Once the old URL answers itself, the count starts over.
    server.reply("/old.xml", 200, DOC, RSS)
    rig.poll_when_due()
    server.redirect("/old.xml", server.url("/new.xml"), 301)
    rig.poll_when_due()
    rig.poll_when_due()
    assert rig.status().moved_to is None
    rig.poll_when_due()
    assert rig.status().moved_to == server.url("/new.xml")


def test_config_url_change_resets_the_move(storage: SqlStorage, server: LoopbackServer) -> None:
    server.redirect("/old.xml", server.url("/new.xml"), 301)
    server.reply("/new.xml", 200, DOC, RSS)
    server.reply("/other.xml", 200, DOC, RSS)
    rig = Rig(storage, server, {"a": "/old.xml"})
    for _ in range(3):
        rig.poll_when_due()
    assert rig.status().moved_to == server.url("/new.xml")

    rig.specs["a"] = replace(rig.specs["a"], url=server.url("/other.xml"))
    rig.sync()

    assert rig.status().moved_to is None
    assert rig.claim() == ["a"]  # a new URL is due at once
    rig.clock.advance(minutes=2)  # past the claim's lease
    rig.poll_when_due()
    assert paths(server)[-1] == "/other.xml"

    # Back to the old URL: the redirect is counted from zero again.
    rig.specs["a"] = replace(rig.specs["a"], url=server.url("/old.xml"))
    rig.sync()
    rig.poll_when_due()
    rig.poll_when_due()
    assert rig.status().moved_to is None
    assert rig.urls_polled() == [server.url("/old.xml")]
    rig.poll_when_due()
    assert rig.status().moved_to == server.url("/new.xml")


# --------------------------------------------------------------------------- composition root


CONFIG = """\
fetch:
  allow_networks: [127.0.0.1/32]
  timeout: 10s
scheduler:
  jitter: 0%
feeds:
  - {{name: a, url: "{url}", interval: 15m}}
"""


def test_make_app_counts_retry_after_dates_on_its_clock(
    db_url: str, server: LoopbackServer
) -> None:
    server.reply(
        "/feed.xml",
        429,
        headers={"Retry-After": format_datetime(T0 + timedelta(hours=3), usegmt=True)},
    )
    config = parse_config(CONFIG.format(url=server.url("/feed.xml")), database_override=db_url)
    clock = FakeClock(T0)
    app = make_app(config, clock=clock, rand=lambda: 0.0)
    try:
        summary = asyncio.run(app.poll())
        (feed,) = app.feeds()
    finally:
        app.close()

    assert [r.status for r in summary.results] == ["rate_limited"]
    assert feed.next_poll_at == T0 + timedelta(hours=3)
