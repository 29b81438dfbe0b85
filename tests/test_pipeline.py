"""The poll pipeline with fakes at the edge and real code in the middle.

A :class:`~fakes.FakeFetcher` answers per URL; the real ``parse_document``
(run inline, as ``core`` does), normalise, decide, ``rules.compile_rules``
matcher and SQL storage (the ``storage`` fixture: SQLite, then PostgreSQL) do
the rest. Time and randomness are injected; nothing is timed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from fakes import ATOM_HEADERS, Entry, FakeClock, FakeFetcher, FetchCall, atom, rss

from feedwatch._model import (
    CommitResult,
    FeedForUpdate,
    FeedSpec,
    FeedUpdateIntent,
    ItemChange,
    PollStatus,
    Prepared,
    PrepareJob,
    RuleSpec,
    SubscriberSpec,
)
from feedwatch.decide import HASH_CHANGED_LIMIT
from feedwatch.exceptions import ErrorKind, FetchError, ParseAborted
from feedwatch.pipeline import Pipeline
from feedwatch.prepare import InlinePrepare
from feedwatch.rules import compile_rules
from feedwatch.storage.base import StorageType
from feedwatch.storage.sql import SqlStorage
from feedwatch.types import FeedStatus, PollResult

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
INTERVAL = 900.0
LAST_MODIFIED = "Sun, 01 Mar 2026 11:00:00 GMT"

# Never contacted: the FakeFetcher answers for them.
URL_A = "https://a.example.org/feed.xml"
URL_B = "https://b.example.org/feed.xml"
URL_C = "https://c.example.org/feed.xml"
URL_D = "https://d.example.org/feed.xml"

RULES = (RuleSpec("climate", "climate"), RuleSpec("sudan", "Sudan"))

A1 = Entry("a1", "Climate summit opens", "Leaders meet on climate finance.")
A2 = Entry("a2", "Budget talks resume", "Nothing about the weather.")
B1 = Entry("b1", "Council meets on Sudan", "The situation in Sudan was discussed.")
B2 = Entry("b2", "Annual report published", "Figures for the year.")
DOC_A = rss(A1, A2, title="Feed A")
DOC_B = rss(B1, B2, title="Feed B")


class RecordingStorage:
    """Real storage, with every committed intent and its result recorded."""

    def __init__(self, inner: SqlStorage) -> None:
        self.inner = inner
        self.commits: list[tuple[FeedUpdateIntent, CommitResult]] = []

    def commit_feed(self, intent: FeedUpdateIntent) -> CommitResult:
        (result,) = self.commit_feeds([intent])
        return result

    def commit_feeds(self, intents: Sequence[FeedUpdateIntent]) -> list[CommitResult]:
        results = self.inner.commit_feeds(intents)
        self.commits.extend(zip(intents, results, strict=True))
        return results

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class Harness:
    """A pipeline over real storage, a fake fetcher, a fake clock and a fixed ``rand``."""

    def __init__(
        self,
        storage: SqlStorage,
        feeds: Sequence[FeedSpec],
        *,
        rules: Sequence[RuleSpec] = RULES,
        rand: float = 0.0,
        subscribers: Sequence[SubscriberSpec] = (),
    ) -> None:
        self.storage = storage
        self.clock = FakeClock(T0)
        self.fetcher = FakeFetcher()
        self.recorder = RecordingStorage(storage)
        storage.sync_config(feeds, rules, subscribers, T0)
        self.pipeline = Pipeline(
            cast(StorageType, self.recorder),
            self.fetcher,
            InlinePrepare(compile_rules(rules)),
            clock=self.clock,
            rand=lambda: rand,
            subscribers=subscribers,
        )

    def feeds(self, *names: str) -> list[FeedForUpdate]:
        return self.storage.feeds_for_poll(list(names) or None)

    def poll(
        self,
        feeds: Sequence[FeedForUpdate] | None = None,
        on_result: Callable[[PollResult], None] | None = None,
    ) -> list[PollResult]:
        return asyncio.run(self.pipeline.poll(self.feeds() if feeds is None else feeds, on_result))

    def poll_one(self, name: str) -> PollResult:
        (result,) = self.poll(self.feeds(name))
        return result

    def status(self, name: str) -> FeedStatus:
        (found,) = [f for f in self.storage.list_feeds(True) if f.name == name]
        return found

    def item_keys(self, feed: str) -> list[str]:
        return sorted(i.entry_key for i in self.storage.list_items(feed))

    def alert_pairs(self) -> list[tuple[str, str]]:
        return sorted((a.rule, a.item_title) for a in self.storage.list_alerts())


def feed(name: str, url: str) -> FeedSpec:
    return FeedSpec(name=name, url=url, interval=INTERVAL)


def brief(result: PollResult) -> tuple[Any, ...]:
    """The fields of a result a test compares (``elapsed`` is real time: left out)."""
    return (
        result.feed,
        result.status,
        result.new,
        result.updated,
        result.alerts,
        result.http_status,
        result.error_kind,
    )


@pytest.fixture
def two(storage: SqlStorage) -> Harness:
    """Feeds ``a`` and ``b``, both serving their documents with validators."""
    h = Harness(storage, [feed("a", URL_A), feed("b", URL_B)])
    h.fetcher.ok(URL_A, DOC_A, etag='"a1"', last_modified=LAST_MODIFIED)
    h.fetcher.ok(URL_B, DOC_B, etag='"b1"')
    return h


# --------------------------------------------------------------------------- success


def test_new_items_and_alerts_are_committed_together(storage: SqlStorage) -> None:
    h = Harness(storage, [feed("a", URL_A)])
    h.fetcher.ok(URL_A, DOC_A, etag='"a1"', last_modified=LAST_MODIFIED)

    (result,) = h.poll()

    assert brief(result) == ("a", "ok", 2, 0, 1, 200, None)
    assert result.seen == 2
    assert result.error is None
    assert h.fetcher.calls == [FetchCall(URL_A, None, None)]
    # One commit carries the feed state, both items and the alert.
    ((intent, committed),) = h.recorder.commits
    assert intent.status is PollStatus.OK
    assert intent.polled_at == T0
    assert [(i.item.entry_key, i.change) for i in intent.items] == [
        ("a1", ItemChange.NEW),
        ("a2", ItemChange.NEW),
    ]
    assert [(a.rule, a.entry_key) for a in intent.alerts] == [("climate", "a1")]
    assert committed == CommitResult(written=True, new_items=2, updated_items=0, new_alerts=1)
    # And storage holds exactly that.
    assert h.item_keys("a") == ["a1", "a2"]
    (alert,) = storage.list_alerts()
    assert (alert.rule, alert.feed, alert.item_title, alert.created_at) == (
        "climate",
        "a",
        "Climate summit opens",
        T0,
    )
    assert alert.spans, "the alert says where the rule matched"
    status = h.status("a")
    assert (status.status, status.last_poll_at, status.last_success_at) == ("ok", T0, T0)
    assert status.next_poll_at == T0 + timedelta(seconds=INTERVAL)
    assert (status.title, status.consecutive_errors, status.last_error) == ("Feed A", 0, None)
    (stored,) = h.feeds("a")
    assert (stored.etag, stored.last_modified) == ('"a1"', LAST_MODIFIED)


def test_injected_rand_spreads_the_next_poll(storage: SqlStorage) -> None:
    h = Harness(storage, [feed("a", URL_A)], rand=0.5)
    h.fetcher.ok(URL_A, DOC_A)

    h.poll()

    # Up to 10% of the interval, scaled by rand.
    assert h.status("a").next_poll_at == T0 + timedelta(seconds=INTERVAL * 1.05)


def test_unchanged_repoll_writes_nothing(two: Harness) -> None:
    two.poll()
    items_before = two.storage.list_items()
    t1 = two.clock.advance(hours=1)
    # The same entries in a body that differs (a comment): parsed, and nothing is new.
    two.fetcher.ok(URL_A, DOC_A + b"<!-- again -->", etag='"a1"', last_modified=LAST_MODIFIED)
    two.fetcher.ok(URL_B, DOC_B + b"<!-- again -->", etag='"b1"')

    results = two.poll()

    assert [brief(r) for r in results] == [
        ("a", "ok", 0, 0, 0, 200, None),
        ("b", "ok", 0, 0, 0, 200, None),
    ]
    assert [r.seen for r in results] == [2, 2]
    for intent, committed in two.recorder.commits[2:]:
        assert (intent.items, intent.alerts) == ((), ())
        assert committed == CommitResult(written=True)
    assert two.storage.list_items() == items_before  # same ids, first_seen untouched
    assert two.alert_pairs() == [
        ("climate", "Climate summit opens"),
        ("sudan", "Council meets on Sudan"),
    ]
    assert two.status("a").last_poll_at == t1
    # The validators of the first answer were sent.
    assert two.fetcher.calls_to(URL_A)[1] == FetchCall(URL_A, '"a1"', LAST_MODIFIED)


def test_changed_document_updates_and_alerts_the_new_item_once(two: Harness) -> None:
    two.poll()
    edited = replace(A1, text="Leaders meet on climate finance and adaptation.")
    new = Entry("a3", "Climate report released", "A new climate report.")
    two.fetcher.ok(URL_A, rss(edited, A2, new), etag='"a2"')
    two.clock.advance(hours=1)

    result = two.poll_one("a")

    assert brief(result) == ("a", "ok", 1, 1, 1, 200, None)
    assert two.item_keys("a") == ["a1", "a2", "a3"]
    (a1,) = [i for i in two.storage.list_items("a") if i.entry_key == "a1"]
    assert a1.content_text == edited.text
    assert a1.first_seen == T0
    # a1 matched again after its edit, but its alert already exists.
    assert two.alert_pairs() == [
        ("climate", "Climate report released"),
        ("climate", "Climate summit opens"),
        ("sudan", "Council meets on Sudan"),
    ]


def test_one_story_alerts_each_rule_once_across_guids_and_feeds(storage: SqlStorage) -> None:
    """A story (one canonical URL) alerts a rule once, with one delivery: a repeat in
    the same document with edited text, a re-issue under a new guid and another
    feed's copy (its link spelt differently) are stored, and alert nothing more; a
    rule the story has not alerted yet still alerts on a later copy."""
    h = Harness(
        storage,
        [feed("a", URL_A), feed("b", URL_B)],
        subscribers=[SubscriberSpec("desk", "webhook", "{}")],
    )
    link = "https://news.example.org/story?id=7"
    first = Entry("a1", "Climate summit opens", "Leaders meet.", link=link)
    repeat = Entry("a1", "Climate summit opens", "Leaders meet, corrected.", link=link)
    reissued = Entry("a1-bis", "Climate summit opens (update)", "More.", link=link)
    copy = Entry(
        "b-77",
        "Climate and Sudan at the summit",
        "Syndicated.",
        link="HTTPS://News.Example.org:443/story?id=7&utm_source=rss#top",
    )
    h.fetcher.ok(URL_A, rss(first, repeat))
    h.fetcher.ok(URL_B, rss(B2))

    polled = [brief(r) for r in h.poll()]
    h.fetcher.ok(URL_A, rss(first, repeat, reissued))
    h.fetcher.ok(URL_B, rss(B2, copy))
    h.clock.advance(hours=1)
    repolled = [brief(r) for r in h.poll()]

    assert polled == [("a", "ok", 2, 0, 1, 200, None), ("b", "ok", 1, 0, 0, 200, None)]
    # The re-issue and the copy are stored; only "sudan" is new for this story.
    assert repolled == [("a", "ok", 1, 0, 0, 200, None), ("b", "ok", 1, 0, 1, 200, None)]
    assert len(h.item_keys("a")) == 3
    assert h.alert_pairs() == [
        ("climate", "Climate summit opens"),
        ("sudan", "Climate and Sudan at the summit"),
    ]
    assert sorted(d.rules for d in storage.list_deliveries()) == [("climate",), ("sudan",)]
    (b_copy,) = [i for i in storage.list_items("b") if i.entry_key == "b-77"]
    # Stored as the feed spelt it (but for the scheme); the story is its canonical form.
    assert b_copy.url == "https://News.Example.org:443/story?id=7&utm_source=rss#top"


def _edit_repeatedly(h: Harness, times: int, *, bump_updated: bool) -> list[int]:
    """Serve ``times`` edits of one Atom entry (its ``<updated>`` bumped or not); return
    the ``updated`` count of each poll."""
    counts = []
    for n in range(1, times + 1):
        when = T0 + timedelta(hours=n) if bump_updated else T0
        entry = Entry("urn:item:1", "Live page", f"Revision {n}.", updated=when)
        h.fetcher.ok(URL_A, atom(entry), headers=ATOM_HEADERS)
        h.clock.advance(minutes=15)
        counts.append(h.poll_one("a").updated)
    return counts


def test_hash_only_changes_are_capped(storage: SqlStorage) -> None:
    h = Harness(storage, [feed("a", URL_A)])
    h.fetcher.ok(URL_A, atom(Entry("urn:item:1", "Live page", "Revision 0.", updated=T0)))
    assert h.poll_one("a").new == 1

    # Same <updated>, new text every poll (a page embedding the time, say).
    counts = _edit_repeatedly(h, HASH_CHANGED_LIMIT + 3, bump_updated=False)

    assert counts == [1] * HASH_CHANGED_LIMIT + [0, 0, 0]
    (item,) = storage.list_items("a")
    assert item.content_text == f"Revision {HASH_CHANGED_LIMIT}."


def test_announced_edits_are_not_capped(storage: SqlStorage) -> None:
    h = Harness(storage, [feed("a", URL_A)])
    h.fetcher.ok(URL_A, atom(Entry("urn:item:1", "Live page", "Revision 0.", updated=T0)))
    assert h.poll_one("a").new == 1

    # Each edit comes with a later <updated>: the feed says the entry changed.
    counts = _edit_repeatedly(h, HASH_CHANGED_LIMIT + 3, bump_updated=True)

    assert counts == [1] * (HASH_CHANGED_LIMIT + 3)
    (item,) = storage.list_items("a")
    assert item.content_text == f"Revision {HASH_CHANGED_LIMIT + 3}."


# --------------------------------------------------------------------------- errors


def test_fetch_error_is_recorded_and_the_other_feeds_commit(two: Harness) -> None:
    two.poll()
    two.fetcher.raise_exc(URL_A, FetchError(ErrorKind.CONNECTION, "connection refused", url=URL_A))
    two.fetcher.ok(URL_B, rss(B1, B2, Entry("b3", "More on Sudan")), etag='"b2"')
    t1 = two.clock.advance(hours=1)

    results = two.poll()

    assert [brief(r) for r in results] == [
        ("a", "error", 0, 0, 0, None, "connection"),
        ("b", "ok", 1, 0, 1, 200, None),
    ]
    assert results[0].error == "connection refused"
    a = two.status("a")
    assert (a.status, a.last_error_kind, a.last_error) == (
        "error",
        "connection",
        "connection refused",
    )
    assert (a.consecutive_errors, a.last_poll_at, a.last_success_at) == (1, t1, T0)
    assert a.item_count == 2
    assert two.item_keys("a") == ["a1", "a2"]
    (stored_a,) = two.feeds("a")
    assert (stored_a.etag, stored_a.last_modified) == ('"a1"', LAST_MODIFIED)
    assert two.item_keys("b") == ["b1", "b2", "b3"]
    assert two.status("b").consecutive_errors == 0

    # Errors count up and back off; the kept validators are still sent.
    t2 = two.clock.advance(hours=1)
    two.poll_one("a")
    a = two.status("a")
    assert a.consecutive_errors == 2
    assert a.next_poll_at == t2 + timedelta(seconds=2 * INTERVAL)
    assert two.fetcher.calls_to(URL_A)[-1] == FetchCall(URL_A, '"a1"', LAST_MODIFIED)

    # A success clears the error.
    two.fetcher.ok(URL_A, DOC_A, etag='"a1"')
    t3 = two.clock.advance(hours=1)
    assert brief(two.poll_one("a")) == ("a", "ok", 0, 0, 0, 200, None)
    a = two.status("a")
    assert (a.status, a.consecutive_errors, a.last_error_kind, a.last_error) == (
        "ok",
        0,
        None,
        None,
    )
    assert a.last_success_at == t3


def test_an_error_quoting_a_stranger_is_stored_as_one_bounded_printable_line(
    two: Harness,
) -> None:
    two.poll()
    hostile = "bad \x9b31m\x85 answer\r\nX-Injected: 1\x00 " + "z" * 5000
    two.fetcher.raise_exc(URL_A, FetchError(ErrorKind.HTTP_STATUS, hostile, url=URL_A))
    two.clock.advance(hours=1)

    (result,) = [r for r in two.poll() if r.feed == "a"]

    expected = "bad 31m answer X-Injected: 1 " + "z" * 470 + "…"
    assert len(expected) == 500
    assert result.error == expected
    assert two.status("a").last_error == expected


def test_parse_error_is_recorded_and_the_other_feeds_commit(two: Harness) -> None:
    two.poll()
    two.fetcher.ok(
        URL_A,
        b"<html><body>Maintenance</body></html>",
        etag='"broken"',
        headers={"content-type": "text/html"},
    )
    two.fetcher.ok(URL_B, rss(B1, B2, Entry("b3", "More on Sudan")))
    two.clock.advance(hours=1)

    results = two.poll()

    assert [brief(r) for r in results] == [
        ("a", "error", 0, 0, 0, 200, "parse"),
        ("b", "ok", 1, 0, 1, 200, None),
    ]
    assert results[0].error
    a = two.status("a")
    assert (a.status, a.last_error_kind, a.last_error) == ("error", "parse", results[0].error)
    assert (a.consecutive_errors, a.item_count) == (1, 2)
    # The validators of the unusable answer are not kept: the next poll must refetch.
    (stored_a,) = two.feeds("a")
    assert (stored_a.etag, stored_a.last_modified) == ('"a1"', LAST_MODIFIED)
    assert two.item_keys("b") == ["b1", "b2", "b3"]


def test_unexpected_exception_is_an_internal_error_and_the_others_commit(
    storage: SqlStorage, caplog: pytest.LogCaptureFixture
) -> None:
    h = Harness(storage, [feed("a", URL_A), feed("b", URL_B), feed("c", URL_C)])
    h.fetcher.raise_exc(URL_A, RuntimeError("boom"))
    h.fetcher.ok(URL_B, DOC_B)
    h.fetcher.ok(URL_C, rss(Entry("c1", "Climate"), title="Feed C"))

    with caplog.at_level(logging.CRITICAL, logger="feedwatch"):
        results = h.poll()

    assert [brief(r) for r in results] == [
        ("a", "error", 0, 0, 0, None, "internal"),
        ("b", "ok", 2, 0, 1, 200, None),
        ("c", "ok", 1, 0, 1, 200, None),
    ]
    assert results[0].error is not None
    assert "RuntimeError: boom" in results[0].error
    a = h.status("a")
    assert (a.status, a.last_error_kind, a.consecutive_errors) == ("error", "internal", 1)
    assert a.last_error == results[0].error
    assert h.item_keys("b") == ["b1", "b2"]
    assert h.item_keys("c") == ["c1"]
    assert any(
        r.levelno == logging.CRITICAL and r.exc_info and r.exc_info[0] is RuntimeError
        for r in caplog.records
    ), "a bug is logged loudly, with its traceback"


def test_retry_after_pushes_the_next_poll(storage: SqlStorage) -> None:
    h = Harness(storage, [feed("a", URL_A), feed("b", URL_B)])
    h.fetcher.raise_exc(
        URL_A,
        FetchError(
            ErrorKind.HTTP_STATUS,
            "HTTP 429 Too Many Requests, retry after 7200s",
            url=URL_A,
            status=429,
            retry_after=7200.0,
        ),
    )
    h.fetcher.raise_exc(
        URL_B,
        FetchError(ErrorKind.HTTP_STATUS, "HTTP 503 Service Unavailable", url=URL_B, status=503),
    )

    results = h.poll()

    # Rate limiting is its own state, not an error: no error count, no failing run.
    assert [brief(r) for r in results] == [
        ("a", "rate_limited", 0, 0, 0, 429, "http_status"),
        ("b", "rate_limited", 0, 0, 0, 503, "http_status"),
    ]
    assert h.status("a").next_poll_at == T0 + timedelta(seconds=7200)
    assert h.status("a").consecutive_errors == 0
    assert h.status("a").failing_since is None
    # Without Retry-After, a rate-limited feed waits one interval.
    assert h.status("b").next_poll_at == T0 + timedelta(seconds=INTERVAL)
    assert [intent.http_status for intent, _ in h.recorder.commits] == [429, 503]


def test_not_modified_keeps_validators_and_items(two: Harness) -> None:
    two.poll()
    two.fetcher.raise_exc(URL_A, FetchError(ErrorKind.TIMEOUT, "timed out after 30s", url=URL_A))
    two.clock.advance(hours=1)
    two.poll_one("a")
    assert two.status("a").consecutive_errors == 1

    # A 304 that repeats no validator: the stored ones stay current.
    two.fetcher.not_modified(URL_A)
    t2 = two.clock.advance(hours=1)
    result = two.poll_one("a")

    assert brief(result) == ("a", "not_modified", 0, 0, 0, 304, None)
    assert two.fetcher.calls_to(URL_A)[-1] == FetchCall(URL_A, '"a1"', LAST_MODIFIED)
    (stored,) = two.feeds("a")
    assert (stored.etag, stored.last_modified) == ('"a1"', LAST_MODIFIED)
    a = two.status("a")
    assert (a.status, a.consecutive_errors, a.last_error) == ("not_modified", 0, None)
    assert (a.last_poll_at, a.last_success_at) == (t2, t2)
    assert a.next_poll_at == t2 + timedelta(seconds=INTERVAL)
    assert two.item_keys("a") == ["a1", "a2"]
    (intent, _) = two.recorder.commits[-1]
    assert (intent.status, intent.items, intent.alerts) == (PollStatus.NOT_MODIFIED, (), ())

    # A 304 with a new ETag replaces it, and keeps Last-Modified.
    two.fetcher.not_modified(URL_A, etag='"a1-gzip"')
    two.clock.advance(hours=1)
    two.poll_one("a")
    (stored,) = two.feeds("a")
    assert (stored.etag, stored.last_modified) == ('"a1-gzip"', LAST_MODIFIED)


# --------------------------------------------------------------------------- batch behaviour


def test_results_come_back_in_input_order(storage: SqlStorage) -> None:
    h = Harness(storage, [feed("a", URL_A), feed("b", URL_B), feed("c", URL_C)])
    h.fetcher.ok(URL_A, DOC_A)
    h.fetcher.raise_exc(URL_B, FetchError(ErrorKind.TIMEOUT, "timed out", url=URL_B))
    h.fetcher.not_modified(URL_C)
    # "a" answers only after "c" has: completion order differs from input order.
    h.fetcher.hold(URL_A, until=h.fetcher.answered(URL_C))
    finished: list[str] = []
    feeds = h.feeds()
    assert [f.name for f in feeds] == ["a", "b", "c"]

    results = h.poll(feeds, on_result=lambda r: finished.append(r.feed))

    assert [r.feed for r in results] == ["a", "b", "c"]
    assert [r.status for r in results] == ["ok", "error", "not_modified"]
    assert finished[-1] == "a"
    assert finished.index("c") < finished.index("a")

    # The same holds for an input order that is not by name.
    h.fetcher.ok(URL_A, DOC_A)
    h.fetcher.not_modified(URL_C)
    reordered = [feeds[2], feeds[0], feeds[1]]
    assert [r.feed for r in h.poll(reordered)] == ["c", "a", "b"]


def test_on_result_is_called_once_per_feed(storage: SqlStorage) -> None:
    h = Harness(
        storage,
        [feed("a", URL_A), feed("b", URL_B), feed("c", URL_C), feed("d", URL_D)],
    )
    h.fetcher.ok(URL_A, DOC_A)
    h.fetcher.not_modified(URL_B)
    h.fetcher.raise_exc(URL_C, FetchError(ErrorKind.BLOCKED, "blocked", url=URL_C))
    h.fetcher.raise_exc(URL_D, ValueError("bug"))
    seen: list[PollResult] = []

    results = h.poll(on_result=seen.append)

    assert sorted(r.feed for r in seen) == ["a", "b", "c", "d"]
    assert sorted(seen, key=lambda r: r.feed) == results
    assert {r.feed: r.status for r in seen} == {
        "a": "ok",
        "b": "not_modified",
        "c": "error",
        "d": "error",
    }


def test_a_stale_lease_token_writes_nothing(storage: SqlStorage) -> None:
    h = Harness(storage, [feed("a", URL_A)])
    h.fetcher.ok(URL_A, DOC_A, etag='"a1"')
    (stale,) = storage.claim_due_feeds(T0, 10, 60.0, "worker-1")
    # Worker 1 took too long: its lease ran out and worker 2 claimed the feed.
    t1 = h.clock.advance(minutes=2)
    (current,) = storage.claim_due_feeds(t1, 10, 60.0, "worker-2")
    assert (stale.lease_token, current.lease_token) == ("worker-1", "worker-2")

    (result,) = h.poll([stale])

    (intent, committed) = h.recorder.commits[-1]
    assert intent.lease_token == "worker-1"
    assert committed.written is False
    assert (result.new, result.updated, result.alerts) == (0, 0, 0)
    assert storage.list_items() == []
    assert storage.list_alerts() == []
    a = h.status("a")
    assert (a.status, a.last_poll_at, a.consecutive_errors) == (None, None, 0)
    assert h.feeds("a")[0].etag is None
    assert a.next_poll_at == t1 + timedelta(seconds=60)  # worker 2's lease, untouched

    # An error from the stale worker is not recorded either.
    h.fetcher.raise_exc(URL_A, FetchError(ErrorKind.TIMEOUT, "timed out", url=URL_A))
    (result,) = h.poll([stale])
    assert result.status == "error"
    assert h.recorder.commits[-1][1].written is False
    assert h.status("a").consecutive_errors == 0
    assert h.status("a").status is None

    # The current holder still commits.
    h.fetcher.ok(URL_A, DOC_A, etag='"a1"')
    (result,) = h.poll([current])
    assert brief(result) == ("a", "ok", 2, 0, 1, 200, None)
    assert h.item_keys("a") == ["a1", "a2"]
    (after,) = h.feeds("a")
    assert after.etag == '"a1"'


# --------------------------------------------------------------------------- unchanged bodies


class CountingPrepare(InlinePrepare):
    """Inline preparation that counts the documents it is given, by URL."""

    def __init__(self, rules: Sequence[RuleSpec] = RULES) -> None:
        super().__init__(compile_rules(rules))
        self.urls: list[str] = []

    async def __call__(self, job: PrepareJob) -> Prepared:
        self.urls.append(job.url)
        return await super().__call__(job)


def counting(h: Harness) -> CountingPrepare:
    prepare = CountingPrepare()
    h.pipeline._prepare = prepare
    return prepare


def test_a_200_repeating_the_last_body_is_not_parsed_again(two: Harness) -> None:
    prepare = counting(two)
    two.poll()
    assert sorted(prepare.urls) == [URL_A, URL_B]
    items_before = two.storage.list_items()
    # The server sends the same bytes again, now with new validators (a), or without (b).
    two.fetcher.ok(URL_A, DOC_A, etag='"a2"')
    t1 = two.clock.advance(hours=1)

    results = two.poll()

    assert sorted(prepare.urls) == [URL_A, URL_B], "neither body was parsed again"
    assert [brief(r) for r in results] == [
        ("a", "ok", 0, 0, 0, 200, None),
        ("b", "ok", 0, 0, 0, 200, None),
    ]
    assert two.storage.list_items() == items_before
    a = two.status("a")
    assert (a.status, a.last_poll_at, a.last_success_at, a.title) == ("ok", t1, t1, "Feed A")
    (stored_a,) = two.feeds("a")
    assert (stored_a.etag, stored_a.last_modified) == ('"a2"', None), "a 200's validators"
    assert len(two.alert_pairs()) == 2

    # One byte more: parsed again.
    two.fetcher.ok(URL_A, rss(A1, A2, Entry("a3", "Climate talks close")))
    two.clock.advance(hours=1)
    results = two.poll()
    assert prepare.urls.count(URL_A) == 2
    assert brief(results[0]) == ("a", "ok", 1, 0, 1, 200, None)


def test_the_same_body_from_another_url_or_charset_is_parsed(storage: SqlStorage) -> None:
    """Relative links resolve against the URL, and the charset may come from the
    Content-Type: either change means a new parse."""
    h = Harness(storage, [feed("a", URL_A)])
    prepare = counting(h)
    h.fetcher.ok(URL_A, DOC_A)
    h.poll()
    h.fetcher.ok(URL_A, DOC_A, headers={"content-type": "application/rss+xml; charset=latin-1"})
    h.clock.advance(hours=1)
    h.poll()
    assert prepare.urls == [URL_A, URL_A]


def test_a_body_that_failed_to_parse_fails_again_without_parsing(two: Harness) -> None:
    prepare = counting(two)
    broken = b"<html><body>Maintenance</body></html>"
    two.fetcher.ok(URL_A, broken, headers={"content-type": "text/html"})
    first = two.poll_one("a")
    assert (first.status, first.error_kind) == ("error", "parse")
    two.clock.advance(hours=1)
    # A fetch error in between does not make the broken body look good.
    two.fetcher.raise_exc(URL_A, FetchError(ErrorKind.TIMEOUT, "timed out", url=URL_A))
    assert two.poll_one("a").error_kind == "timeout"
    two.clock.advance(hours=1)
    two.fetcher.ok(URL_A, broken, headers={"content-type": "text/html"})

    again = two.poll_one("a")

    assert prepare.urls == [URL_A], "the broken body was parsed once"
    assert (again.status, again.error_kind, again.error, again.http_status) == (
        "error",
        "parse",
        first.error,
        200,
    )
    a = two.status("a")
    assert (a.consecutive_errors, a.last_error_kind, a.last_error) == (3, "parse", first.error)
    # Fixed: parsed, and its items stored.
    two.fetcher.ok(URL_A, DOC_A)
    two.clock.advance(hours=1)
    assert brief(two.poll_one("a")) == ("a", "ok", 2, 0, 1, 200, None)
    assert prepare.urls == [URL_A, URL_A]


def test_a_new_url_in_the_config_forgets_the_body(storage: SqlStorage) -> None:
    h = Harness(storage, [feed("a", URL_A)])
    prepare = counting(h)
    h.fetcher.ok(URL_A, DOC_A)
    h.fetcher.ok(URL_C, DOC_A)
    h.poll()
    (before,) = h.feeds("a")
    assert before.body_hash is not None
    storage.sync_config([feed("a", URL_C)], RULES, [], h.clock.advance(hours=1))
    (after,) = h.feeds("a")
    assert (after.body_hash, after.body_error) == (None, None)
    h.poll()
    assert prepare.urls == [URL_A, URL_C]


def test_a_stopped_parse_is_not_remembered_for_the_unchanged_body(storage: SqlStorage) -> None:
    """Over its budget or a dead worker says nothing about the document: the same
    body is parsed again next time (and may then succeed)."""

    class StoppedOnce(CountingPrepare):
        async def __call__(self, job: PrepareJob) -> Prepared:
            self.urls.append(job.url)
            if len(self.urls) == 1:
                raise ParseAborted("parsing took longer than 30 s; the parser was stopped")
            return await InlinePrepare.__call__(self, job)

    h = Harness(storage, [feed("a", URL_A)])
    prepare = StoppedOnce()
    h.pipeline._prepare = prepare
    h.fetcher.ok(URL_A, DOC_A)
    first = h.poll_one("a")
    assert (first.status, first.error_kind) == ("error", "parse")
    (stored,) = h.feeds("a")
    assert (stored.body_hash, stored.body_error) == (None, None)
    h.clock.advance(hours=1)

    again = h.poll_one("a")

    assert prepare.urls == [URL_A, URL_A]
    assert brief(again) == ("a", "ok", 2, 0, 1, 200, None)


# --------------------------------------------------------------------------- write batches


class CountingStorage(RecordingStorage):
    """Records the feeds of every ``commit_feeds`` call (one transaction each)."""

    def __init__(self, inner: SqlStorage) -> None:
        super().__init__(inner)
        self.batches: list[list[int]] = []

    def commit_feeds(self, intents: Sequence[FeedUpdateIntent]) -> list[CommitResult]:
        self.batches.append([intent.feed_id for intent in intents])
        return super().commit_feeds(intents)


def _counting(h: Harness) -> CountingStorage:
    counting = CountingStorage(h.storage)
    h.pipeline._storage = counting  # type: ignore[assignment]
    return counting


def test_feeds_finishing_one_after_another_share_one_transaction(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each feed is answered only once the one before it waits for the writer: without
    # the writer's wait, every feed would be committed alone.
    monkeypatch.setattr("feedwatch.pipeline.WRITE_LINGER_S", 600.0)
    h = Harness(storage, [feed("a", URL_A), feed("b", URL_B), feed("c", URL_C)])
    counting = _counting(h)

    async def run() -> list[PollResult]:
        for url, doc in ((URL_A, DOC_A), (URL_B, DOC_B), (URL_C, rss(title="Feed C"))):
            h.fetcher.ok(url, doc)  # fresh answers (and their events) for each loop
        queued = asyncio.Event()
        h.fetcher.hold(URL_B, until=queued)
        h.fetcher.hold(URL_C, until=h.fetcher.answered(URL_B))
        polls = asyncio.gather(*(h.pipeline.poll_feed(f) for f in h.feeds()))
        # Answered, "a" is prepared inline and queued for the writer without a pause.
        await h.fetcher.answered(URL_A).wait()
        assert len(h.pipeline._ready) == 1
        queued.set()
        return await asyncio.wait_for(polls, 60)

    results = asyncio.run(run())

    assert [r.status for r in results] == ["ok", "ok", "ok"]
    assert [sorted(batch) for batch in counting.batches] == [sorted(f.id for f in h.feeds())]
    assert h.item_keys("a") == ["a1", "a2"]
    assert h.item_keys("b") == ["b1", "b2"]

    # The same pipeline in another event loop (as tests do): the writer waits there too.
    again = asyncio.run(run())

    assert [r.status for r in again] == ["ok", "ok", "ok"]
    assert len(counting.batches) == 2


def test_a_lone_feed_is_committed_without_waiting(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No other feed is on its way: the writer must not wait its 600 s.
    monkeypatch.setattr("feedwatch.pipeline.WRITE_LINGER_S", 600.0)
    h = Harness(storage, [feed("a", URL_A), feed("b", URL_B)])
    h.fetcher.ok(URL_A, DOC_A)
    h.fetcher.raise_exc(URL_B, FetchError(ErrorKind.TIMEOUT, "timed out", url=URL_B))
    counting = _counting(h)

    async def run() -> list[PollResult]:
        return await asyncio.wait_for(h.pipeline.poll(h.feeds()), 60)

    results = asyncio.run(run())

    assert [(r.feed, r.status) for r in results] == [("a", "ok"), ("b", "error")]
    # The error is recorded at once (its own transaction); "a" is committed alone.
    assert sorted(counting.batches) == sorted([[f.id] for f in h.feeds()])


def _a_committed_while_b_is_fetched(h: Harness) -> tuple[PollResult, PollResult]:
    """Poll feeds "a" and "b" with "b"'s answer held until "a" has its result: "a"
    must be committed while "b" is still being fetched (the writer would otherwise
    wait for it, 600 s in these tests)."""

    async def run() -> tuple[PollResult, PollResult]:
        release_b = asyncio.Event()
        h.fetcher.hold(URL_B, until=release_b)
        feed_a, feed_b = h.feeds()
        poll_b = asyncio.ensure_future(h.pipeline.poll_feed(feed_b))
        result_a = await asyncio.wait_for(h.pipeline.poll_feed(feed_a), 60)
        assert not poll_b.done()
        release_b.set()
        return result_a, await asyncio.wait_for(poll_b, 60)

    return asyncio.run(run())


def test_a_full_batch_is_committed_while_other_feeds_are_on_their_way(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("feedwatch.pipeline.WRITE_LINGER_S", 600.0)
    monkeypatch.setattr("feedwatch.pipeline.WRITE_BATCH_ITEMS", 2)
    h = Harness(storage, [feed("a", URL_A), feed("b", URL_B)])
    h.fetcher.ok(URL_A, DOC_A)  # two items: a full batch
    h.fetcher.ok(URL_B, DOC_B)
    counting = _counting(h)

    result_a, result_b = _a_committed_while_b_is_fetched(h)

    assert (result_a.new, result_b.new) == (2, 2)
    assert len(counting.batches) == 2


def test_feeds_waiting_for_the_writer_hold_at_most_half_the_slots(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two feeds in flight at most: one waiting for the writer is half of them, so
    # it is committed while the other is still being fetched.
    monkeypatch.setattr("feedwatch.pipeline.WRITE_LINGER_S", 600.0)
    h = Harness(storage, [feed("a", URL_A), feed("b", URL_B)])
    h.pipeline._max_in_flight = 2
    h.fetcher.ok(URL_A, DOC_A)
    h.fetcher.ok(URL_B, DOC_B)
    counting = _counting(h)

    result_a, result_b = _a_committed_while_b_is_fetched(h)

    assert (result_a.new, result_b.new) == (2, 2)
    assert len(counting.batches) == 2
