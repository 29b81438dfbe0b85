"""The parse worker: documents parsed in another process, within a time budget."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from feedwatch.exceptions import ParseError
from feedwatch.workers import ParsePool

DOC = (Path(__file__).parent / "data" / "parse" / "rss20_basic.xml").read_bytes()
URL = "http://127.0.0.1/feed.xml"


def test_a_document_is_parsed_in_the_worker() -> None:
    async def run() -> int:
        pool = ParsePool(budget=30)
        try:
            first = await pool(DOC, URL, {"content-type": "application/rss+xml"})
            second = await pool(DOC, URL, {})
        finally:
            pool.close()
        assert first == second
        return len(first.entries)

    assert asyncio.run(run()) == DOC.count(b"<item>")


def test_a_parse_over_its_budget_is_stopped_and_the_next_one_works() -> None:
    async def run() -> None:
        pool = ParsePool(budget=30)
        try:
            await pool(DOC, URL, {})  # the worker is up
            pid_before = {p.pid for p in pool._executor()._processes.values()}  # type: ignore[attr-defined]
            pool._budget = 1e-6  # no parse fits in a microsecond
            with pytest.raises(ParseError, match="longer than"):
                await pool(DOC, URL, {})
            pool._budget = 30
            parsed = await pool(DOC, URL, {})
            pid_after = {p.pid for p in pool._executor()._processes.values()}  # type: ignore[attr-defined]
        finally:
            pool.close()
        assert parsed.entries
        assert pid_before.isdisjoint(pid_after)  # the stuck worker was replaced

    asyncio.run(run())


def test_broken_input_is_a_parse_error_not_a_dead_pool() -> None:
    async def run() -> None:
        pool = ParsePool(budget=30)
        try:
            with pytest.raises(ParseError):
                await pool(b"\x00\x01 not a feed at all", URL, {})
            assert (await pool(DOC, URL, {})).entries
        finally:
            pool.close()

    asyncio.run(run())
