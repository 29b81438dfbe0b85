"""Parsing, normalising and matching in worker processes, each with a time budget.

feedparser is pure Python and can spin for a long time on a pathological
document (feedparser #263: a job stuck in a parse call stops a whole schedule),
and the CPU-bound part of a poll must not hold the GIL of the process that
fetches and writes. :class:`PreparePool` runs :func:`feedwatch.prepare.prepare`
in ``workers`` processes (one per core by default), one document at a time
each; a document that outlives its budget gets its worker killed and replaced,
and a :class:`~feedwatch.exceptions.ParseError` for its feed: the other feeds
go on.

A worker is a fresh interpreter (``python -m feedwatch._prepare_worker``),
never a fork of a daemon full of threads and sockets, and imports only the
parsing, normalising and rule modules. It talks to us over its stdin and stdout
in length-prefixed pickles (both ends are ours), exits when its stdin closes,
and dies with its parent even when that is killed with SIGKILL
(``PR_SET_PDEATHSIG`` on Linux). The rules are sent to a worker when it starts
and again after :meth:`PreparePool.set_rules` (a reload), before its next job.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import struct
import sys
from collections.abc import Iterable, Sequence

from ._logging import current_format, get_logger
from ._model import Prepared, PrepareJob, RuleSpec
from .exceptions import ParseError

log = get_logger(__name__)

#: Default time budget for preparing one document, seconds.
PARSE_BUDGET = 30.0
#: How long a closing worker may take to exit on its own before it is killed.
_EXIT_GRACE = 2.0

#: How a worker learns the log format of its parent.
LOG_FORMAT_ENV = "FEEDWATCH_WORKER_LOG_FORMAT"

# One frame: an 8-byte big-endian length, then a pickle. Shared with the worker.
HEADER = struct.Struct("!Q")


def parse_workers() -> int:
    """Worker processes to run: one per core this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def frame(message: object) -> bytes:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(payload)) + payload


class _WorkerDied(Exception):
    pass


class _Worker:
    """One worker process, started on first use and again after it died or was killed."""

    def __init__(self) -> None:
        self._process: asyncio.subprocess.Process | None = None
        self._dead: list[asyncio.subprocess.Process] = []
        self.rules_version = -1

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        await self._reap()
        if self.running:
            return
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "feedwatch._prepare_worker",
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # Its log lines (a regex over its time budget) in the parent's format.
            env={**os.environ, LOG_FORMAT_ENV: current_format()},
        )
        self.rules_version = -1

    async def send(self, data: bytes) -> None:
        process = self._process
        assert process is not None
        assert process.stdin is not None
        try:
            process.stdin.write(data)
            await process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _WorkerDied from exc

    async def receive(self) -> tuple[str, object]:
        process = self._process
        assert process is not None
        assert process.stdout is not None
        try:
            (size,) = HEADER.unpack(await process.stdout.readexactly(HEADER.size))
            reply: tuple[str, object] = pickle.loads(await process.stdout.readexactly(size))
            return reply
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            raise _WorkerDied from exc

    @property
    def pid(self) -> int | None:
        return self._process.pid if self.running and self._process is not None else None

    def kill(self) -> None:
        """Stop the process now (a stuck parse cannot be interrupted otherwise).

        It is reaped by the next :meth:`start` or :meth:`close`.
        """
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        self._dead.append(process)

    async def _reap(self) -> None:
        dead, self._dead = self._dead, []
        for process in dead:
            await process.wait()

    async def close(self) -> None:
        await self._reap()
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            assert process.stdin is not None
            process.stdin.close()  # the worker exits at the end of its input ...
            # ... but one still starting up would only see that once its imports
            # are done, and an idle worker holds nothing worth a goodbye.
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(_EXIT_GRACE):
                    await process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        await process.wait()


class PreparePool:
    """``await pool(job)`` -> :class:`Prepared`, within ``budget`` seconds per document.

    A :data:`~feedwatch.prepare.PrepareRunner`. ``workers`` documents are prepared
    at once, each in its own process. Call :meth:`start` early to have the
    workers ready (they start on first use otherwise) and :meth:`aclose` when done.
    """

    def __init__(
        self,
        *,
        rules: Iterable[RuleSpec] = (),
        workers: int = 1,
        budget: float = PARSE_BUDGET,
    ) -> None:
        self._workers = [_Worker() for _ in range(max(1, workers))]
        self._budget = budget
        self._rules: tuple[RuleSpec, ...] = tuple(rules)
        self._rules_version = 0
        self._idle: asyncio.Queue[_Worker] | None = None
        self._closed = False

    def set_rules(self, rules: Sequence[RuleSpec]) -> None:
        """Match with ``rules`` from the next document on (each worker gets them once)."""
        rules = tuple(rules)
        if rules != self._rules:
            self._rules = rules
            self._rules_version += 1

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [pid for pid in (w.pid for w in self._workers) if pid is not None]

    def _queue(self) -> asyncio.Queue[_Worker]:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for worker in self._workers:
                self._idle.put_nowait(worker)
        return self._idle

    async def start(self) -> None:
        """Start every worker process and send it the rules, without waiting for a job."""
        if self._closed:
            raise RuntimeError("PreparePool is closed")
        idle = self._queue()
        for _ in self._workers:
            worker = await idle.get()  # never one that is busy with a document
            try:
                await worker.start()
                await self._send_rules(worker)
            finally:
                idle.put_nowait(worker)

    async def _send_rules(self, worker: _Worker) -> None:
        if worker.rules_version != self._rules_version:
            await worker.send(frame(("rules", self._rules)))
            worker.rules_version = self._rules_version

    async def __call__(self, job: PrepareJob) -> Prepared:
        if self._closed:
            raise RuntimeError("PreparePool is closed")
        idle = self._queue()
        worker = await idle.get()
        try:
            return await self._run(worker, job)
        finally:
            idle.put_nowait(worker)

    async def _run(self, worker: _Worker, job: PrepareJob) -> Prepared:
        data = frame(("job", job))
        try:
            async with asyncio.timeout(self._budget):
                await worker.start()
                await self._send_rules(worker)
                await worker.send(data)
                reply = await worker.receive()
        except TimeoutError:
            worker.kill()
            raise ParseError(
                f"parsing took longer than {self._budget:g} s; the parser was stopped",
                url=job.url,
            ) from None
        except _WorkerDied:
            worker.kill()
            raise ParseError("the parser process died on this document", url=job.url) from None
        except BaseException:
            # Cancelled mid-document: the worker's state is unknown; start afresh.
            worker.kill()
            raise
        status, value = reply
        if status == "ok":
            assert isinstance(value, Prepared)
            return value
        if status == "parse_error":
            raise ParseError(str(value), url=job.url)
        # A bug in the worker, not the feed's fault: the pipeline records it as internal.
        raise RuntimeError(f"worker failed: {value}")

    async def aclose(self) -> None:
        """Let every worker finish and exit (killed after a grace period). Idempotent."""
        self._closed = True
        for worker in self._workers:
            await worker.close()
