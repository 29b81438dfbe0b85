"""The prepare workers: documents parsed, normalised and matched in other processes,
within a time budget."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from feedwatch._model import PrepareJob, RuleSpec
from feedwatch.exceptions import ParseError
from feedwatch.prepare import prepare
from feedwatch.rules import compile_rules
from feedwatch.workers import PreparePool

DOC = (Path(__file__).parent / "data" / "parse" / "rss20_basic.xml").read_bytes()
URL = "http://127.0.0.1/feed.xml"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULES = (RuleSpec("any", "the OR a OR of"), RuleSpec("never", "zzzqqq"))


def job(
    content: bytes = DOC, headers: dict[str, str] | None = None, feed: str = "feed"
) -> PrepareJob:
    return PrepareJob(
        content=content,
        url=URL,
        headers=headers if headers is not None else {"content-type": "application/rss+xml"},
        feed=feed,
        feed_tags=("news",),
        polled_at=NOW,
    )


def titled(title: str, *, sleep: float = 0.0) -> PrepareJob:
    """A small feed called ``title``; with ``sleep`` (and the ``slow_feeds`` fixture)
    its worker takes that many more seconds over it."""
    content = (
        f'<rss version="2.0"><channel><title>{title}</title><item><title>An item</title>'
        f"<link>http://127.0.0.1/{title}</link></item></channel></rss>"
    ).encode()
    return job(content, feed=f"sleep:{sleep}" if sleep else "feed")


# Loaded by every worker started while the fixture is active (the workers inherit
# PYTHONPATH), before the worker module imports ``prepare``.
SLOW_FEEDS_HOOK = """
import time
import feedwatch.prepare

_prepare = feedwatch.prepare.prepare


def prepare(job, matcher, **options):
    if job.feed.startswith("sleep:"):
        time.sleep(float(job.feed.removeprefix("sleep:")))
    return _prepare(job, matcher, **options)


feedwatch.prepare.prepare = prepare
"""


@pytest.fixture
def slow_feeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers take SECONDS longer over a document of a feed named ``sleep:SECONDS``."""
    (tmp_path / "sitecustomize.py").write_text(SLOW_FEEDS_HOOK)
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))


def in_flight(pool: PreparePool) -> list[int]:
    """Jobs sent to each worker and not answered yet."""
    return [sum(item.sent for item in worker.queue) for worker in pool._workers]


async def until(condition: Callable[[], bool], seconds: float = 30) -> None:
    """Poll ``condition`` (the pool's state) until it holds; fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the pool has no event for this
            await asyncio.sleep(0.01)


def run_bounded(main: Coroutine[Any, Any, None], seconds: float = 60) -> None:
    """``asyncio.run(main)``, failing instead of hanging when replies get lost."""

    async def bounded() -> None:
        async with asyncio.timeout(seconds):
            await main

    asyncio.run(bounded())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its dead parent's reaper) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_a_document_is_prepared_in_a_worker_as_it_is_inline() -> None:
    async def run() -> None:
        pool = PreparePool(rules=RULES, workers=2, budget=30)
        try:
            await pool.start()
            assert len(pool.pids()) == 2
            got = await pool(job())
            again = await pool(job(headers={}))
        finally:
            await pool.aclose()
        expected = prepare(job(), compile_rules(RULES))
        assert got == expected
        assert again.items == expected.items
        assert got.items
        assert got.matches
        assert {m.rule for found in got.matches.values() for m in found} == {"any"}
        assert pool.pids() == []  # closed: the workers exited

    asyncio.run(run())


@pytest.mark.parametrize("depth", [1, 2])
def test_new_rules_reach_the_workers_before_their_next_document(depth: int) -> None:
    async def run() -> None:
        pool = PreparePool(rules=RULES, workers=1, budget=30, depth=depth)
        try:
            before = await pool(job())
            pool.set_rules([RuleSpec("never", "zzzqqq")])
            after = await pool(job())
        finally:
            await pool.aclose()
        assert before.matches
        assert after.matches == {}

    asyncio.run(run())


@pytest.mark.parametrize("depth", [1, 2])
def test_a_document_over_its_budget_is_stopped_and_the_next_one_works(depth: int) -> None:
    async def run() -> None:
        pool = PreparePool(rules=RULES, workers=1, budget=30, depth=depth)
        try:
            await pool(job())  # the worker is up
            before = pool.pids()
            pool._budget = 1e-6  # no document fits in a microsecond
            with pytest.raises(ParseError, match="longer than"):
                await pool(job())
            pool._budget = 30
            prepared = await pool(job())
            after = pool.pids()
        finally:
            await pool.aclose()
        assert prepared.items
        assert before
        assert after
        assert set(before).isdisjoint(after)

    asyncio.run(run())


@pytest.mark.parametrize("depth", [1, 2])
def test_broken_input_is_a_parse_error_not_a_dead_pool(depth: int) -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=depth)
        try:
            with pytest.raises(ParseError, match="not a feed"):
                await pool(job(b"\x00\x01 not a feed at all"))
            first = pool.pids()
            assert (await pool(job())).items
            assert pool.pids() == first  # the same worker: an error does not kill it
        finally:
            await pool.aclose()

    asyncio.run(run())


@pytest.mark.parametrize("depth", [1, 2])
def test_a_worker_that_dies_is_a_parse_error_and_is_replaced(depth: int) -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=depth)
        try:
            await pool.start()
            (pid,) = pool.pids()
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(ParseError, match="died"):
                await pool(job())
            assert (await pool(job())).items
            assert pool.pids() != [pid]
        finally:
            await pool.aclose()

    asyncio.run(run())


# --------------------------------------------------------------------------- depth: jobs in flight


def test_two_documents_queued_on_one_worker_are_answered_in_order(slow_feeds: None) -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=2)
        try:
            await pool.start()
            first = asyncio.create_task(pool(titled("A", sleep=0.3)))
            second = asyncio.create_task(pool(titled("B")))
            await until(lambda: in_flight(pool) == [2])  # B waits in the pipe behind A
            b = await second
            assert first.done()  # replies come in the order the documents went
            a = await first
            c = await pool(titled("C"))
        finally:
            await pool.aclose()
        assert (a.title, b.title, c.title) == ("A", "B", "C")
        assert [item.url for item in b.items] == ["http://127.0.0.1/B"]

    run_bounded(run())


def test_the_budget_is_per_document_not_from_when_it_was_queued(slow_feeds: None) -> None:
    async def run() -> None:
        # Each takes 1.5 s of a 3 s budget; the second was queued 3 s before its reply.
        pool = PreparePool(workers=1, budget=3.0, depth=2)
        try:
            await pool.start()
            first = asyncio.create_task(pool(titled("A", sleep=1.5)))
            second = asyncio.create_task(pool(titled("B", sleep=1.5)))
            await until(lambda: in_flight(pool) == [2])
            a, b = await asyncio.gather(first, second)
        finally:
            await pool.aclose()
        assert (a.title, b.title) == ("A", "B")

    run_bounded(run())


def test_a_document_over_its_budget_fails_alone_and_the_one_behind_it_runs_again(
    slow_feeds: None,
) -> None:
    async def run() -> None:
        # B needs 0.5 s of its 4 s (plus the start of a fresh worker), though it
        # was queued 4 s before A ran out of time.
        pool = PreparePool(workers=1, budget=4.0, depth=2)
        try:
            await pool.start()
            before = pool.pids()
            first = asyncio.create_task(pool(titled("A", sleep=60)))
            second = asyncio.create_task(pool(titled("B", sleep=0.5)))
            await until(lambda: in_flight(pool) == [2])
            with pytest.raises(ParseError) as raised:
                await first
            assert raised.value.message == ("parsing took longer than 4 s; the parser was stopped")
            assert raised.value.url == URL
            b = await second
            after = pool.pids()
        finally:
            await pool.aclose()
        assert b.title == "B"
        assert before
        assert after
        assert set(before).isdisjoint(after)  # A's worker was killed and replaced

    run_bounded(run())


def test_a_worker_killed_with_two_documents_in_flight_fails_only_the_first(
    slow_feeds: None,
) -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=2)
        try:
            await pool.start()
            (pid,) = pool.pids()
            first = asyncio.create_task(pool(titled("A", sleep=30)))
            second = asyncio.create_task(pool(titled("B")))
            await until(lambda: in_flight(pool) == [2])
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(ParseError) as raised:
                await first
            assert raised.value.message == "the parser process died on this document"
            b = await second
            c = await pool(titled("C"))
            assert pool.pids() != [pid]
        finally:
            await pool.aclose()
        assert (b.title, c.title) == ("B", "C")

    run_bounded(run())


@pytest.mark.parametrize("cancelled", ["first", "second"])
def test_a_cancelled_caller_does_not_mix_up_the_replies(slow_feeds: None, cancelled: str) -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=2)
        try:
            await pool.start()
            (pid,) = pool.pids()
            tasks = {
                "first": asyncio.create_task(pool(titled("A", sleep=0.5))),
                "second": asyncio.create_task(pool(titled("B"))),
            }
            await until(lambda: in_flight(pool) == [2])
            tasks[cancelled].cancel()
            (kept,) = (name for name in tasks if name != cancelled)
            got = await tasks[kept]
            with pytest.raises(asyncio.CancelledError):
                await tasks[cancelled]
            later = [await pool(titled("C")), await pool(titled("D"))]
            await until(lambda: in_flight(pool) == [0])
            # Its reply was read and dropped: the worker lives on.
            assert pool.pids() == [pid]
        finally:
            await pool.aclose()
        assert got.title == {"first": "A", "second": "B"}[kept]
        assert [p.title for p in later] == ["C", "D"]

    run_bounded(run())


def test_a_job_cancelled_before_its_worker_started_is_never_sent() -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=2)
        try:
            cancelled = asyncio.create_task(pool(titled("A")))
            await asyncio.sleep(0)  # queued; the worker is still starting
            assert [len(w.queue) for w in pool._workers] == [1]
            assert in_flight(pool) == [0]
            cancelled.cancel()
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            assert [len(w.queue) for w in pool._workers] == [0]
            got = await pool(titled("B"))
        finally:
            await pool.aclose()
        assert got.title == "B"

    run_bounded(run())


def test_jobs_go_to_the_least_busy_worker_and_callers_beyond_depth_wait(
    slow_feeds: None,
) -> None:
    async def run() -> None:
        pool = PreparePool(workers=2, budget=30, depth=2)
        try:
            await pool.start()
            tasks = [asyncio.create_task(pool(titled(t, sleep=0.5))) for t in "ABCD"]
            waiting = asyncio.create_task(pool(titled("E")))
            await until(lambda: in_flight(pool) == [2, 2])
            await asyncio.sleep(0.1)
            assert not waiting.done()
            assert [len(w.queue) for w in pool._workers] == [2, 2]
            got = await asyncio.gather(*tasks, waiting)
        finally:
            await pool.aclose()
        assert [p.title for p in got] == list("ABCDE")

    run_bounded(run())


def test_depth_one_sends_a_worker_one_document_at_a_time(slow_feeds: None) -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=1)
        try:
            await pool.start()
            first = asyncio.create_task(pool(titled("A", sleep=0.5)))
            second = asyncio.create_task(pool(titled("B")))
            await until(lambda: in_flight(pool) == [1])
            await asyncio.sleep(0.1)
            assert [len(w.queue) for w in pool._workers] == [1]  # B waits for A's reply
            assert not first.done()
            a, b = await asyncio.gather(first, second)
        finally:
            await pool.aclose()
        assert (a.title, b.title) == ("A", "B")

    run_bounded(run())


@pytest.mark.parametrize("depth", [1, 2])
def test_new_rules_apply_to_documents_sent_after_them(slow_feeds: None, depth: int) -> None:
    async def run() -> None:
        pool = PreparePool(rules=RULES, workers=1, budget=30, depth=depth)
        try:
            await pool.start()
            first = asyncio.create_task(pool(job(feed="sleep:0.5")))
            await until(lambda: in_flight(pool) == [1])
            pool.set_rules([RuleSpec("never", "zzzqqq")])
            second = asyncio.create_task(pool(job()))
            before, after = await asyncio.gather(first, second)
        finally:
            await pool.aclose()
        assert before.matches  # sent with the old rules
        assert after.matches == {}

    run_bounded(run())


def test_a_job_that_cannot_be_sent_fails_alone() -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=1)
        try:
            unpicklable = job(headers={"content-type": lambda: None})  # type: ignore[dict-item]
            with pytest.raises((pickle.PicklingError, AttributeError)):
                await pool(unpicklable)
            assert (await pool(titled("B"))).title == "B"  # its slot was given back
        finally:
            await pool.aclose()

    run_bounded(run())


def test_closing_fails_the_jobs_still_waiting_and_is_idempotent(slow_feeds: None) -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30, depth=1)
        await pool.start()
        busy = asyncio.create_task(pool(titled("A", sleep=30)))
        waiting = asyncio.create_task(pool(titled("B")))
        await until(lambda: in_flight(pool) == [1])
        await pool.aclose()
        for task in (busy, waiting):
            with pytest.raises(RuntimeError, match="closed"):
                await task
        assert pool.pids() == []
        await pool.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await pool(titled("C"))

    run_bounded(run())


def test_workers_die_with_their_parent_even_on_sigkill(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from feedwatch.workers import PreparePool

        async def main():
            pool = PreparePool(workers=2)
            await pool.start()
            print(" ".join(map(str, pool.pids())), flush=True)
            await asyncio.sleep(60)

        asyncio.run(main())
        """
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        assert all(alive(p) for p in pids)
        parent.kill()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)


def test_a_workers_log_lines_use_the_parents_format_and_name_the_feed(
    capfd: pytest.CaptureFixture[str],
) -> None:
    from feedwatch._logging import configure, current_format

    # A regex that backtracks for far longer than its 50 ms budget on this title.
    slow = RuleSpec("slow", r"/(x|xx)+\d/")
    title = "x" * 60
    document = (
        f'<rss version="2.0"><channel><title>T</title><item><title>{title}</title>'
        "<link>http://127.0.0.1/1</link></item></channel></rss>"
    ).encode()
    before = current_format()
    configure(fmt="json")
    try:

        async def run() -> None:
            pool = PreparePool(rules=[slow], workers=1, budget=30)
            try:
                prepared = await pool(job(document))
            finally:
                await pool.aclose()
            assert prepared.items
            assert prepared.matches == {}  # a regex over its budget is a non-match

        asyncio.run(run())
    finally:
        configure(fmt=before)
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")
    ]
    timeouts = [line for line in lines if "rule_regex_timeout" in json.dumps(line)]
    assert timeouts
    assert all(line.get("feed") == "feed" for line in timeouts)


@pytest.mark.skipif(not hasattr(fcntl, "F_GETPIPE_SZ"), reason="Linux pipes only")
def test_worker_pipes_hold_a_whole_document() -> None:
    """1 MiB pipes (not 64 KiB): a document crosses in a few writes, not dozens."""
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())

    async def run() -> None:
        pool = PreparePool(workers=1, budget=30)
        try:
            prepared = await pool(job())
            process = pool._workers[0]._process
            assert process is not None
            assert process.stdin is not None
            assert process.stdout is not None
            ends = (
                process.stdin.transport.get_extra_info("pipe"),
                process.stdout._transport.get_extra_info("pipe"),  # type: ignore[attr-defined]
            )
            sizes = [fcntl.fcntl(end.fileno(), fcntl.F_GETPIPE_SZ) for end in ends]
        finally:
            await pool.aclose()
        assert prepared.items
        assert sizes == [min(1 << 20, limit)] * 2

    run_bounded(run())


def test_items_cross_the_pipe_whole() -> None:
    """Items pickle as their field values (``Item.__reduce__``): equal, frozen, UTC kept."""
    from dataclasses import FrozenInstanceError, fields

    from feedwatch._model import Item

    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    item = Item(
        entry_key="k",
        guid="g",
        url="https://example.org/a",
        canonical_url="https://example.org/a",
        title="Title",
        content_html="<p>x</p>",
        content_text="x",
        author=None,
        published=when,
        updated=None,
        first_seen=when,
        sort_at=when,
        tags=("un", "ai"),
        language="en",
        content_hash="h",
    )
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        copy = pickle.loads(pickle.dumps(item, protocol=protocol))
        assert copy == item
        assert [getattr(copy, f.name) for f in fields(Item)] == [
            getattr(item, f.name) for f in fields(Item)
        ]
        assert copy.published is not None
        assert copy.published.tzinfo is UTC
        with pytest.raises(FrozenInstanceError):
            copy.title = "changed"  # type: ignore[misc]


# ------------------------------------------------------------------ fetch.max_items


def numbered(count: int) -> bytes:
    """RSS with ``count`` items n0, n1, ... in document order (n0 first: the newest)."""
    items = "".join(
        f'<item><title>n{i}: the news</title><guid isPermaLink="false">n-{i}</guid></item>'
        for i in range(count)
    )
    return f'<rss version="2.0"><channel><title>Numbered</title>{items}</channel></rss>'.encode()


def test_a_document_keeps_its_first_max_items_entries() -> None:
    prepared = prepare(job(numbered(5)), compile_rules(RULES), max_items=3)

    assert [item.guid for item in prepared.items] == ["n-0", "n-1", "n-2"]
    assert set(prepared.matches) == {"n-0", "n-1", "n-2"}  # the dropped are never matched
    assert prepared.warnings == ("document has 5 entries; the first 3 were kept (fetch.max_items)",)
    # At the limit: all kept, no warning.
    exact = prepare(job(numbered(3)), compile_rules(RULES), max_items=3)
    assert (len(exact.items), exact.warnings) == (3, ())


def test_max_items_defaults_to_ten_thousand() -> None:
    prepared = prepare(job(numbered(10_001)), compile_rules(()))

    assert len(prepared.items) == 10_000
    assert prepared.items[-1].guid == "n-9999"
    assert prepared.warnings == (
        "document has 10,001 entries; the first 10,000 were kept (fetch.max_items)",
    )


def test_inline_prepare_takes_max_items() -> None:
    from feedwatch.prepare import InlinePrepare

    prepared = asyncio.run(InlinePrepare(compile_rules(()), max_items=1)(job(numbered(2))))

    assert [item.guid for item in prepared.items] == ["n-0"]


def test_the_pool_gives_its_workers_max_items() -> None:
    """Through each worker's command line: both workers cut the document."""

    async def run() -> None:
        pool = PreparePool(rules=RULES, workers=2, budget=30, max_items=2)
        try:
            await pool.start()
            pids = set(pool.pids())
            got = await asyncio.gather(*(pool(job(numbered(4))) for _ in range(4)))
            assert set(pool.pids()) == pids  # the same two (depth 2: two jobs each)
        finally:
            await pool.aclose()
        expected = prepare(job(numbered(4)), compile_rules(RULES), max_items=2)
        assert got == [expected] * 4
        assert [item.guid for item in expected.items] == ["n-0", "n-1"]
        assert expected.warnings == (
            "document has 4 entries; the first 2 were kept (fetch.max_items)",
        )

    run_bounded(run())


def test_the_pool_refuses_max_items_below_one() -> None:
    with pytest.raises(ValueError, match="max_items must be at least 1, got 0"):
        PreparePool(max_items=0)
