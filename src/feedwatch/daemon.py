"""``feedwatch run``: the long-running daemon.

One asyncio loop holds everything::

    APScheduler (AsyncIOScheduler, in this loop; every job max_instances=1, coalesced)
      tick       every scheduler.tick: heartbeat; claim due feeds (the schedule is each
                 feed's next_poll_at in the database) up to the free poll slots, and
                 start one task per feed: the same Pipeline.poll_feed as `feedwatch poll`
      dispatch   every scheduler.dispatch, and woken after a poll raised alerts
                 (digests are deliveries due at their window's end)
      retention  hourly: history older than retention.items / retention.deliveries
    HTTP server  (uvicorn in this loop) health, metrics, API, Atom
    signals      SIGTERM/SIGINT: stop; SIGHUP: reload the configuration

Nothing can hang a job: every fetch has a total deadline, parsing, normalising
and matching run in worker processes with a time budget per document
(:class:`~feedwatch.workers.PreparePool`), and
the tick only starts poll tasks, it never waits for them. A feed is claimed
with a lease longer than one poll can take; a daemon that dies leaves its feeds
to be claimed again when their leases run out. Several daemons on one
PostgreSQL share the feeds through those claims (``FOR UPDATE SKIP LOCKED``).

Shutdown (SIGTERM, SIGINT): no new claims; polls in flight get
:data:`SHUTDOWN_GRACE` seconds to finish, then are cancelled (a commit is one
synchronous transaction, so a cancelled poll leaves nothing half-written, and
its lease simply runs out); the HTTP server stops; exit 0.

Reload (SIGHUP, ``feedwatch reload``): the file is read and validated again; if
it is invalid the daemon says so and keeps running on the old one. Otherwise
feeds, rules and subscribers are synced, and new polls use the new rules,
subscribers and policy; polls in flight finish with what they started with.
The database and the HTTP address are not changed by a reload (restart for that).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import random
import secrets
import signal
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from ._logging import event, get_logger
from ._model import FeedForUpdate
from .config import Config, load_config
from .core import Feedwatch, make_app
from .exceptions import ConfigError, StorageError
from .fetch import HttpFetcher
from .metrics import Metrics
from .pipeline import Pipeline
from .server import HttpServer, create_app
from .types import PollResult
from .workers import PreparePool, parse_workers

log = get_logger(__name__)

#: Seconds polls in flight get to finish on shutdown before they are cancelled.
SHUTDOWN_GRACE = 20.0
#: The scheduler's heartbeat is stale (``/healthz`` 503) after this many ticks without one.
HEARTBEAT_TICKS = 10
#: Extra seconds on a feed's lease beyond its fetch deadline and parse budget.
LEASE_MARGIN = 60.0
#: Seconds between two runs of the retention job.
RETENTION_EVERY = 3600.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """The daemon's state; :meth:`run` until a stop signal."""

    def __init__(
        self,
        config_path: str | Path,
        *,
        env: Mapping[str, str],
        database_override: str | None = None,
        pid_file: Path | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._path = Path(config_path)
        self._env = env
        self._database_override = database_override
        self._pid_file = pid_file
        self._clock = clock
        self._rand = random.random
        self._token = f"daemon-{os.getpid()}-{secrets.token_hex(6)}"
        self.metrics = Metrics()
        self._tasks: set[asyncio.Task[PollResult]] = set()
        self._stopping = asyncio.Event()
        self._started = False
        self._draining = False
        self._last_tick: float | None = None
        self._dispatching = False
        #: Dispatch and retention runs in progress (awaited at shutdown), and
        #: an event set while there are none.
        self._jobs_running = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: One reload at a time (SIGHUP and the API may ask together).
        self._reloading = asyncio.Lock()
        self._scheduler: AsyncIOScheduler | None = None
        # Set by _load.
        self.config: Config
        self.app: Feedwatch
        self._pipeline: Pipeline
        self._fetcher: HttpFetcher
        self._parser: PreparePool

    # ------------------------------------------------------------------ DaemonState

    def heartbeat_age(self) -> float | None:
        return None if self._last_tick is None else time.monotonic() - self._last_tick

    @property
    def heartbeat_limit(self) -> float:
        return max(self.config.scheduler.tick * HEARTBEAT_TICKS, 5.0)

    def ready(self) -> bool:
        return self._started and not self._draining

    # ------------------------------------------------------------------ life

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; the exit status (0, or 2/3 when it cannot start)."""
        config = load_config(
            self._path, env=self._env, database_override=self._database_override
        )  # ConfigError goes to the caller: exit 2
        self.config = config
        self.app = make_app(config, clock=self._clock)
        self.app.sync()  # StorageError goes to the caller: exit 3
        self._fetcher = HttpFetcher(config.fetch, clock=self._clock)
        self._parser = PreparePool(
            rules=config.rules,
            workers=parse_workers(),
            budget=config.scheduler.parse_timeout,
            max_items=config.fetch.max_items,
        )
        self._pipeline = self._make_pipeline(self.app)
        await self._parser.start()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop_soon, sig)
        loop.add_signal_handler(signal.SIGHUP, self._reload_soon)
        server = HttpServer(
            create_app(
                self.app,
                self,
                self.metrics,
                token=config.server.token,
                clock=self._clock,
                reload=self.reload_with_reason,
            ),
            config.server.host,
            config.server.port,
        )
        await server.start()
        self._write_pid()
        self._scheduler = self._make_scheduler(loop)
        self._scheduler.start()
        self._started = True
        event(
            log,
            logging.INFO,
            "daemon started",
            feeds=sum(f.enabled for f in config.feeds),
            rules=len(config.rules),
            subscribers=len(config.subscribers),
            listen=f"{config.server.host}:{server.port}",
            tick=config.scheduler.tick,
        )
        try:
            await self._stopping.wait()
        finally:
            await self._shutdown(server)
        return 0

    def _make_scheduler(self, loop: asyncio.AbstractEventLoop) -> AsyncIOScheduler:
        sched = self.config.scheduler
        scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        scheduler.add_job(
            self._tick, "interval", seconds=sched.tick, id="tick", next_run_time=_utcnow(), **common
        )
        scheduler.add_job(
            self._dispatch, "interval", seconds=sched.dispatch, id="dispatch", **common
        )
        scheduler.add_job(
            self._retention,
            "interval",
            seconds=RETENTION_EVERY,
            id="retention",
            next_run_time=_utcnow() + timedelta(seconds=min(60.0, RETENTION_EVERY)),
            **common,
        )
        # APScheduler warns (on the root logger) when a coalesced run is skipped
        # because the previous one is still going: that is the point of max_instances.
        logging.getLogger("apscheduler").setLevel(logging.ERROR)
        return scheduler

    def _make_pipeline(self, app: Feedwatch) -> Pipeline:
        # Workers take the new rules before their next document.
        self._parser.set_rules(app.config.rules)
        return Pipeline(
            app.storage,
            self._fetcher,
            self._parser,
            clock=self._clock,
            rand=self._rand,
            subscribers=app.config.subscribers,
            policy=app.config.scheduler,
        )

    def _stop_soon(self, sig: signal.Signals) -> None:
        if not self._stopping.is_set():
            event(log, logging.INFO, "daemon stopping", signal=sig.name)
            self._stopping.set()

    async def _shutdown(self, server: HttpServer) -> None:
        self._draining = True
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._tasks:
            event(log, logging.INFO, "waiting for polls in flight", polls=len(self._tasks))
            _done, pending = await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                event(log, logging.WARNING, "polls cancelled at shutdown", polls=len(pending))
        # A dispatch or retention run in progress finishes (bounded) before the
        # database goes away under it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), SHUTDOWN_GRACE)
        with contextlib.suppress(Exception):
            await server.stop()
        await self._fetcher.aclose()
        await self._parser.aclose()
        self.app.close()
        self._remove_pid()
        event(log, logging.INFO, "daemon stopped")

    # ------------------------------------------------------------------ jobs

    def _job_started(self) -> None:
        self._jobs_running += 1
        self._idle.clear()

    def _job_done(self) -> None:
        self._jobs_running -= 1
        if self._jobs_running == 0:
            self._idle.set()

    async def _tick(self) -> None:
        now_mono = time.monotonic()
        if self._last_tick is not None:
            lag = max(0.0, now_mono - self._last_tick - self.config.scheduler.tick)
            self.metrics.set_scheduler_lag(lag)
        self._last_tick = now_mono
        self.metrics.heartbeat(time.time())
        if self._draining:
            return
        free = self.config.fetch.concurrency - len(self._tasks)
        if free <= 0:
            return
        sched, fetch = self.config.scheduler, self.config.fetch
        lease = fetch.timeout + sched.parse_timeout + LEASE_MARGIN
        try:
            feeds = await asyncio.to_thread(
                self.app.storage.claim_due_feeds, self._clock(), free, lease, self._token
            )
        except StorageError as exc:
            event(log, logging.ERROR, "cannot claim feeds", error=str(exc))
            return
        for feed in feeds:
            task = asyncio.create_task(self._poll(self._pipeline, feed), name=f"poll {feed.name}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _poll(self, pipeline: Pipeline, feed: FeedForUpdate) -> PollResult:
        result = await pipeline.poll_feed(feed)
        self.metrics.observe_poll(result)
        if result.alerts and self._scheduler is not None and not self._draining:
            # Alerts are waiting in the outbox: send them now, not at the next round.
            job = self._scheduler.get_job("dispatch")
            if job is not None and not self._dispatching:
                job.modify(next_run_time=_utcnow())
        return result

    async def _dispatch(self) -> None:
        if self._draining:
            return
        self._dispatching = True
        self._job_started()
        try:
            summary = await self.app.dispatch(synced=True)
        except StorageError as exc:
            event(log, logging.ERROR, "cannot dispatch deliveries", error=str(exc))
            return
        finally:
            self._dispatching = False
            self._job_done()
        for result in summary.results:
            self.metrics.observe_delivery(result)

    async def _retention(self) -> None:
        """Delete history past ``retention:`` (never what a pending delivery needs)."""
        if self._draining:
            return
        keep = self.config.retention
        now = self._clock()
        items_before = None if keep.items is None else now - timedelta(seconds=keep.items)
        deliveries_before = (
            None if keep.deliveries is None else now - timedelta(seconds=keep.deliveries)
        )
        if items_before is None and deliveries_before is None:
            return
        self._job_started()
        try:
            removed = await asyncio.to_thread(
                self.app.storage.purge, items_before, deliveries_before
            )
        except StorageError as exc:
            event(log, logging.ERROR, "retention failed", error=str(exc))
            return
        finally:
            self._job_done()
        if any(removed.values()):
            event(log, logging.INFO, "retention", **removed)

    # ------------------------------------------------------------------ reload

    def _reload_soon(self) -> None:
        asyncio.get_running_loop().create_task(self.reload(), name="reload")

    async def reload(self) -> bool:
        """Read the configuration again; keep the old one if the new one is invalid."""
        ok, _detail = await self.reload_with_reason()
        return ok

    async def reload_with_reason(self) -> tuple[bool, str]:
        """:meth:`reload`, saying what changed or why the file was refused."""
        async with self._reloading:
            return await self._reload()

    async def _reload(self) -> tuple[bool, str]:
        try:
            config = load_config(self._path, env=os.environ, database_override=None)
        except (ConfigError, OSError) as exc:
            event(
                log,
                logging.ERROR,
                "reload failed: the running configuration is kept",
                file=str(self._path),
                error=str(exc),
            )
            return False, f"the running configuration is kept: {exc}"
        if config.database_url != self.config.database_url:
            if self._database_override is None:
                event(
                    log,
                    logging.WARNING,
                    "reload: the database cannot change while running; restart to switch",
                    kept=self.config.database_url,
                )
            config = dataclasses.replace(config, database_url=self.config.database_url)
        app = Feedwatch(
            config,
            self.app.storage,
            fetcher_factory=lambda: self._fetcher,
            clock=self._clock,
        )
        try:
            report = await asyncio.to_thread(app.sync)
        except StorageError as exc:
            event(log, logging.ERROR, "reload failed: database", error=str(exc))
            return False, f"the running configuration is kept: database: {exc}"
        self.config = config
        self.app = app
        self._pipeline = self._make_pipeline(app)
        changes = {
            kind: len(r.added) + len(r.updated) + len(r.renamed) + len(r.deactivated)
            for kind, r in report.items()
        }
        event(log, logging.INFO, "configuration reloaded", file=str(self._path), **changes)
        summary = ", ".join(f"{n} {kind} changed" for kind, n in changes.items())
        return True, f"configuration reloaded from {self._path} ({summary})"

    # ------------------------------------------------------------------ pid file

    def _write_pid(self) -> None:
        if self._pid_file is not None:
            self._pid_file.write_text(f"{os.getpid()}\n", encoding="ascii")

    def _remove_pid(self) -> None:
        if self._pid_file is not None:
            with contextlib.suppress(OSError):
                self._pid_file.unlink()
