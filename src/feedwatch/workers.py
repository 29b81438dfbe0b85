"""Parsing, normalising and matching in worker processes, each with a time budget.

feedparser is pure Python and can spin for a long time on a pathological
document (feedparser #263: a job stuck in a parse call stops a whole schedule),
and the CPU-bound part of a poll must not hold the GIL of the process that
fetches and writes. :class:`PreparePool` runs :func:`feedwatch.prepare.prepare`
in ``workers`` processes (one per core by default). A document that outlives
its budget gets its worker killed and replaced, and a
:class:`~feedwatch.exceptions.ParseError` for its feed: the other feeds go on.

Each worker has up to ``depth`` documents in flight (2 by default): the next
one waits in its stdin pipe while it works on the current one, so it need not
sit idle until our event loop, busy fetching and committing, gets round to
reading its answer and sending it more work. A worker answers its documents in
the order it got them. One task per worker (:meth:`PreparePool._drive`) starts
its process, reads the replies and hands each to the caller of the oldest job,
so the budget is per document: it starts when the worker gets to the document
(when the reply before it arrived, or when it was sent to an idle worker), not
when it was queued. When the worker dies or its current document runs out of
time, only that document fails; the ones queued behind it go to a fresh
process. A caller cancelled while its document is in the pipe leaves it there:
the worker still prepares it and its reply is read and dropped (a document not
yet sent is simply forgotten).

A worker is a fresh interpreter (``python -m feedwatch._prepare_worker``),
never a fork of a daemon full of threads and sockets, and imports only the
parsing, normalising and rule modules. It talks to us over its stdin and stdout
in length-prefixed pickles (both ends are ours), exits when its stdin closes,
and dies with its parent even when that is killed with SIGKILL
(``PR_SET_PDEATHSIG`` on Linux). The rules are sent to a worker when it starts
and again after :meth:`PreparePool.set_rules` (a reload), before its next job;
``max_items`` (``fetch.max_items``, entries kept of one document) is fixed for
the pool and given to each worker on its command line.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pickle
import struct
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn

from ._logging import current_format, get_logger
from ._model import DEFAULT_MAX_ITEMS, Prepared, PrepareJob, RuleSpec
from .exceptions import ParseAborted, ParseError

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


class _Job:
    """A document on its way through a worker, and the future its caller awaits."""

    __slots__ = ("data", "deadline", "future", "job", "sent")

    def __init__(self, job: PrepareJob, future: asyncio.Future[tuple[str, object]]) -> None:
        self.job = job
        #: Its frame, pickled by the caller (so a job that cannot be sent fails there).
        self.data = frame(("job", job))
        self.future = future
        #: Written to the current process's stdin (a fresh process gets it again).
        self.sent = False
        #: When its budget runs out (loop time), from when the worker got to it.
        self.deadline: float | None = None


class _Worker:
    """One worker process, started on first use and again after it died or was killed."""

    def __init__(self, max_items: int = DEFAULT_MAX_ITEMS) -> None:
        self._max_items = max_items
        self._process: asyncio.subprocess.Process | None = None
        self._dead: list[asyncio.subprocess.Process] = []
        self._starting = asyncio.Lock()
        self.rules_version = -1
        #: Jobs given to this worker, oldest (the one it is working on) first.
        self.queue: collections.deque[_Job] = collections.deque()
        #: Set when a job is queued, for the task that reads the replies.
        self.wake = asyncio.Event()
        #: That task (:meth:`PreparePool._drive`), while the worker has a process or jobs.
        self.task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start a process unless there is one: one that died with jobs sent to it is
        for the reader to find (end of its stdout), and then :meth:`kill`."""
        async with self._starting:  # the pool's start() and the worker's task may race
            await self._reap()
            if self._process is not None:
                return
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "feedwatch._prepare_worker",
                str(os.getpid()),
                str(self._max_items),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                # Its log lines (a regex over its time budget) in the parent's format.
                env={**os.environ, LOG_FORMAT_ENV: current_format()},
            )
            self.rules_version = -1

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the worker's stdin, without waiting.

        No drain: at most ``depth`` documents are buffered per worker, and a
        worker that died is noticed by the reader (end of its stdout).
        """
        process = self._process
        assert process is not None
        assert process.stdin is not None
        process.stdin.write(data)

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
    at once, each in its own process, and each worker has up to ``depth`` documents
    in flight (``depth=1``: it gets the next one only once it has answered);
    a job goes to the worker with the fewest, and callers beyond
    ``workers * depth`` wait. A document keeps its first ``max_items`` entries
    (:func:`~feedwatch.prepare.prepare`). Call :meth:`start` early to have the workers
    ready (they start on first use otherwise) and :meth:`aclose` when done.
    """

    def __init__(
        self,
        *,
        rules: Iterable[RuleSpec] = (),
        workers: int = 1,
        budget: float = PARSE_BUDGET,
        depth: int = 2,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        self._workers = [_Worker(max_items) for _ in range(max(1, workers))]
        self._budget = budget
        self._depth = max(1, depth)
        self._rules: tuple[RuleSpec, ...] = tuple(rules)
        self._rules_version = 0
        # One per job in a worker's queue: the pool never holds more than
        # workers * depth, so a caller that gets one finds a worker with room.
        self._slots = asyncio.Semaphore(len(self._workers) * self._depth)
        self._closed = False

    def set_rules(self, rules: Sequence[RuleSpec]) -> None:
        """Match with ``rules`` from the next document sent on (each worker gets them once)."""
        rules = tuple(rules)
        if rules != self._rules:
            self._rules = rules
            self._rules_version += 1

    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [pid for pid in (w.pid for w in self._workers) if pid is not None]

    async def start(self) -> None:
        """Start every worker process and send it the rules, without waiting for a job."""
        if self._closed:
            raise RuntimeError("PreparePool is closed")
        for worker in self._workers:
            if worker.task is None and not worker.running:
                worker.kill()  # died idle, before any job: replace it
            await worker.start()
            self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        """Send ``worker`` the rules if they changed, then the jobs it has not got yet.

        Synchronous, so the frames go out in the order of its queue.
        """
        if not worker.running:
            return  # starting (its task sends them once it runs) or gone (it restarts)
        if worker.rules_version != self._rules_version:
            worker.write(frame(("rules", self._rules)))
            worker.rules_version = self._rules_version
        for item in worker.queue:
            if not item.sent:
                worker.write(item.data)
                item.sent = True

    async def __call__(self, job: PrepareJob) -> Prepared:
        if self._closed:
            raise RuntimeError("PreparePool is closed")
        await self._slots.acquire()
        if self._closed:  # closed while we waited
            self._slots.release()
            raise RuntimeError("PreparePool is closed")
        try:
            item = _Job(job, asyncio.get_running_loop().create_future())
        except BaseException:
            self._slots.release()
            raise
        worker = min(self._workers, key=lambda w: len(w.queue))
        assert len(worker.queue) < self._depth
        worker.queue.append(item)
        self._flush(worker)
        worker.wake.set()
        if worker.task is None:
            worker.task = asyncio.create_task(self._drive(worker))
        try:
            status, value = await item.future
        except asyncio.CancelledError:
            if not item.sent and item in worker.queue:  # never reached the worker
                worker.queue.remove(item)
                self._slots.release()
            # Else the worker prepares it anyway; its reply is read and dropped.
            raise
        if status == "ok":
            assert isinstance(value, Prepared)
            return value
        if status == "parse_error":
            raise ParseError(str(value), url=job.url)
        # A bug in the worker, not the feed's fault: the pipeline records it as internal.
        raise RuntimeError(f"worker failed: {value}")

    async def _drive(self, worker: _Worker) -> None:
        """Run ``worker``'s jobs: start its process and read its replies; when the
        process dies or overruns a budget, fail the document it was on and start
        a fresh one for the jobs behind it. Ends when that leaves no job."""
        try:
            while True:
                try:
                    await worker.start()
                except Exception as exc:  # no process, so none of its jobs can run
                    self._fail_all(worker, f"cannot start a parser process: {exc}")
                    return
                internal = False
                try:
                    await self._serve(worker)
                except TimeoutError:
                    reason = f"parsing took longer than {self._budget:g} s; the parser was stopped"
                except _WorkerDied:
                    reason = "the parser process died on this document"
                except Exception as exc:  # an unreadable reply (or a bug here): the
                    # replies can no longer be matched to the jobs
                    reason, internal = f"worker failed: {exc!r}", True
                worker.kill()
                self._requeue(worker, reason, internal=internal)
                if not worker.queue:
                    return
        finally:
            worker.task = None

    async def _serve(self, worker: _Worker) -> NoReturn:
        """Send ``worker``'s process its jobs and hand each reply to the oldest job's
        caller, until the process dies (:class:`_WorkerDied`) or the job it is on
        runs out of time (:class:`TimeoutError`)."""
        loop = asyncio.get_running_loop()
        self._flush(worker)
        while True:
            if not worker.queue:
                worker.wake.clear()
                await worker.wake.wait()
                continue
            head = worker.queue[0]
            if not head.sent:  # the process ended while idle: _flush could not send it
                raise _WorkerDied
            if head.deadline is None:  # the worker is on it from now
                head.deadline = loop.time() + self._budget
            async with asyncio.timeout_at(head.deadline):
                reply = await worker.receive()
            assert worker.queue[0] is head  # only this task takes a sent job off the queue
            worker.queue.popleft()
            self._slots.release()
            if not head.future.done():  # else its caller was cancelled: drop the reply
                head.future.set_result(reply)

    def _requeue(self, worker: _Worker, reason: str, *, internal: bool = False) -> None:
        """The process of ``worker`` is gone: fail the job it was on with a ParseError
        (a RuntimeError if ``internal``); the others go to its next process (those
        whose callers left are dropped)."""
        queue = worker.queue
        if queue and queue[0].sent:
            head = queue.popleft()
            self._slots.release()
            if not head.future.done():
                error = RuntimeError(reason) if internal else ParseAborted(reason, url=head.job.url)
                head.future.set_exception(error)
        for item in list(queue):
            if item.future.done():
                queue.remove(item)
                self._slots.release()
            else:
                item.sent = False
                item.deadline = None

    def _fail_all(self, worker: _Worker, message: str) -> None:
        while worker.queue:
            item = worker.queue.popleft()
            self._slots.release()
            if not item.future.done():
                item.future.set_exception(RuntimeError(message))

    async def aclose(self) -> None:
        """Stop every worker: jobs still waiting fail with RuntimeError, the processes
        exit (killed after a grace period). Idempotent."""
        self._closed = True
        tasks = [w.task for w in self._workers if w.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in self._workers:
            self._fail_all(worker, "PreparePool is closed")
            await worker.close()
