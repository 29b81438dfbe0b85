"""The prepare workers: documents parsed, normalised and matched in other processes,
within a time budget."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

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


def job(content: bytes = DOC, headers: dict[str, str] | None = None) -> PrepareJob:
    return PrepareJob(
        content=content,
        url=URL,
        headers=headers if headers is not None else {"content-type": "application/rss+xml"},
        feed="feed",
        feed_tags=("news",),
        polled_at=NOW,
    )


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


def test_new_rules_reach_the_workers_before_their_next_document() -> None:
    async def run() -> None:
        pool = PreparePool(rules=RULES, workers=1, budget=30)
        try:
            before = await pool(job())
            pool.set_rules([RuleSpec("never", "zzzqqq")])
            after = await pool(job())
        finally:
            await pool.aclose()
        assert before.matches
        assert after.matches == {}

    asyncio.run(run())


def test_a_document_over_its_budget_is_stopped_and_the_next_one_works() -> None:
    async def run() -> None:
        pool = PreparePool(rules=RULES, workers=1, budget=30)
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


def test_broken_input_is_a_parse_error_not_a_dead_pool() -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30)
        try:
            with pytest.raises(ParseError, match="not a feed"):
                await pool(job(b"\x00\x01 not a feed at all"))
            first = pool.pids()
            assert (await pool(job())).items
            assert pool.pids() == first  # the same worker: an error does not kill it
        finally:
            await pool.aclose()

    asyncio.run(run())


def test_a_worker_that_dies_is_a_parse_error_and_is_replaced() -> None:
    async def run() -> None:
        pool = PreparePool(workers=1, budget=30)
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
