"""Parsing off the event loop, in a worker process with a time budget.

feedparser is pure Python and can spin for a long time on a pathological
document (feedparser #263: a job stuck in a parse call stops a whole schedule).
A thread cannot be stopped; a process can. :class:`ParsePool` runs
``parse_document`` in one worker process at a time per slot, and a parse that
outlives its budget gets the worker killed and replaced, and a
:class:`~feedwatch.exceptions.ParseError` for its feed: the other feeds go on.

Workers are started with the ``spawn`` method (a fresh interpreter: never a
fork of a daemon full of threads and sockets) and die with their parent, even
when it is killed with SIGKILL (``PR_SET_PDEATHSIG`` on Linux).
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from ._logging import get_logger
from ._model import ParsedFeed
from .exceptions import ParseError
from .parse import parse_document

log = get_logger(__name__)

#: Default time budget for parsing one document, seconds.
PARSE_BUDGET = 30.0


def parse_workers() -> int:
    """Parse processes to run: one per core this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _parse(content: bytes, url: str, headers: dict[str, str]) -> ParsedFeed:
    return parse_document(content, url=url, headers=headers)


def _context() -> multiprocessing.context.BaseContext:
    # spawn, not fork: the daemon has threads (a forked child could inherit a
    # held lock), and not forkserver: its server outlives a killed parent.
    return multiprocessing.get_context("spawn")


def _die_with_parent(parent: int) -> None:
    """Worker initializer: exit when the process that started us dies (even by
    SIGKILL), so no orphan keeps parsing, or holds its stdout open."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # pragma: no cover - no prctl here
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


class ParsePool:
    """``await pool(content, url, headers)`` -> ParsedFeed, within ``budget`` seconds.

    ``workers`` documents are parsed at once, each in its own process. Call
    :meth:`close` when done (idempotent).
    """

    def __init__(self, *, workers: int = 1, budget: float = PARSE_BUDGET) -> None:
        self._workers = max(1, workers)
        self._budget = budget
        self._slots = asyncio.Semaphore(self._workers)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=_context(),
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def __call__(self, content: bytes, url: str, headers: Mapping[str, str]) -> ParsedFeed:
        async with self._slots:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor(), _parse, content, url, dict(headers))
            try:
                return await asyncio.wait_for(future, self._budget)
            except TimeoutError:
                self._kill()
                raise ParseError(
                    f"parsing took longer than {self._budget:g} s; the parser was stopped", url=url
                ) from None
            except BrokenProcessPool:
                self._kill()
                raise ParseError("the parser process died on this document", url=url) from None

    def _kill(self) -> None:
        """Stop the workers now (a stuck parse cannot be interrupted otherwise)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public way to kill a busy worker.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
