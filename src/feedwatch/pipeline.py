"""The "do it" side of a poll: calls the stages in order, one feed at a time per task.

Does not decide anything itself (``decide``, ``rules`` and ``normalise`` do) and
does not know which fetcher, parser runner or database it talks to::

    feeds (from storage)
    | fetch          Fetcher.fetch, concurrently (the fetcher bounds global and per-host load)
    | prepare        PrepareRunner (worker processes, or inline): bytes + headers ->
    |                parse, normalise (pure) and match every item (pure) -> Prepared
    | stored         storage.entries_for_update
    | decide         pure: new / updated items, next poll time
    | alerts         the matches of new and updated items
    | plan           pure: which subscribers get which alert (outbox.plan_deliveries)
    | commit         storage.commit_feed: feed state + items + alerts + deliveries, ONE transaction

One failing feed yields an error result and never stops the others; every
error is recorded on its feed with its kind. Nothing holds a transaction
while fetching.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from . import _failpoints as failpoints
from ._logging import bind, event, get_logger
from ._model import (
    AlertIntent,
    CommitResult,
    EntryForUpdate,
    FeedForUpdate,
    FeedUpdateIntent,
    FetchResult,
    ItemIntent,
    Notice,
    PollStatus,
    Prepared,
    PrepareJob,
    SchedulerOptions,
    SubscriberSpec,
)
from ._utils import one_line
from .decide import (
    NextPoll,
    Outcome,
    ServerHints,
    body_fingerprint,
    decide_items,
    schedule_next,
    server_hints,
)
from .exceptions import (
    ErrorKind,
    FeedError,
    FetchError,
    ParseAborted,
    ParseError,
    StorageError,
)
from .fetch import Fetcher
from .outbox import plan_deliveries
from .storage.base import StorageType
from .types import PollResult

log = get_logger(__name__)

#: Runs ``prepare.prepare`` for a job: in worker processes, or inline (tests).
PrepareRunner = Callable[[PrepareJob], Awaitable[Prepared]]

Clock = Callable[[], datetime]

#: A write batch closes at this many feeds, or once it holds this many items.
WRITE_BATCH_FEEDS = 64
WRITE_BATCH_ITEMS = 2000
#: While other feeds are still being fetched or prepared, the writer waits up to
#: this long (seconds) for more of them to join a batch below those sizes. Without
#: it a busy poll commits nearly every feed alone (the writer keeps up), and every
#: commit writes the feeds' and indexes' pages and the table's last ones to the
#: SQLite WAL again: 944 commits for 1,000 feeds, and 2.4 WAL writes per page stored.
WRITE_LINGER_S = 0.2


@dataclass(slots=True)
class _Fetched:
    """A feed fetched (and prepared, unless the server said 304), waiting for the writer."""

    feed: FeedForUpdate
    polled_at: datetime
    result: FetchResult
    prepared: Prepared | None
    #: The fingerprint of the 200 body that was prepared (None for a 304).
    body_hash: str | None = None
    done: asyncio.Future[PollResult] | None = None

    def resolve(self, result: PollResult) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(result)

    def resolve_error(self, exc: BaseException) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(exc)


class Pipeline:
    """Poll feeds through fetch, parse, normalise, decide, match and commit."""

    def __init__(
        self,
        storage: StorageType,
        fetcher: Fetcher,
        prepare: PrepareRunner,
        *,
        clock: Clock,
        rand: Callable[[], float],
        subscribers: Sequence[SubscriberSpec] = (),
        policy: SchedulerOptions = SchedulerOptions(),  # noqa: B008 - immutable
        max_in_flight: int = 32,
    ) -> None:
        self._max_in_flight = max(1, max_in_flight)
        self._subscribers = tuple(subscribers)
        self._policy = policy
        self._storage = storage
        self._fetcher = fetcher
        self._prepare = prepare
        self._ready: deque[_Fetched] = deque()
        self._writer: asyncio.Task[None] | None = None
        #: Feeds between the start of their poll and its result (the ready ones included).
        self._in_progress = 0
        #: Set whenever a feed joins ``_ready``; one per writer task, made in its loop
        #: (an Event belongs to the loop it first waits in, and tests run several).
        self._arrived: asyncio.Event | None = None
        self._clock = clock
        self._rand = rand

    async def poll(
        self,
        feeds: Sequence[FeedForUpdate],
        on_result: Callable[[PollResult], None] | None = None,
    ) -> list[PollResult]:
        """Poll each feed once, concurrently; results come back in input order.

        At most ``max_in_flight`` feeds are between fetch and commit at once, so
        fetched documents cannot pile up in memory while they wait for the parser.
        """
        slots = asyncio.Semaphore(self._max_in_flight)

        async def one(feed: FeedForUpdate) -> PollResult:
            async with slots:
                result = await self.poll_feed(feed)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(f) for f in feeds)))

    async def poll_feed(self, feed: FeedForUpdate) -> PollResult:
        # Every line logged during this poll names the feed.
        with bind(feed=feed.name):
            return await self._poll_feed(feed)

    async def _poll_feed(self, feed: FeedForUpdate) -> PollResult:
        polled_at = self._clock()
        started = time.perf_counter()
        self._in_progress += 1
        try:
            result = await self._poll_or_record(feed, polled_at)
        finally:
            self._in_progress -= 1
        elapsed = time.perf_counter() - started
        level = logging.WARNING if result.failed else logging.INFO
        event(
            log,
            level,
            "polled",
            feed=feed.name,
            status=result.status,
            new=result.new,
            updated=result.updated,
            alerts=result.alerts,
            error=result.error or "",
        )
        return _with_elapsed(result, elapsed)

    async def _poll_or_record(self, feed: FeedForUpdate, polled_at: datetime) -> PollResult:
        """The feed's poll result; a failure is recorded on the feed and is its result."""
        try:
            return await self._poll(feed, polled_at)
        except FeedError as exc:
            return self._record_error(feed, polled_at, exc)
        except StorageError as exc:
            # The database failed for this feed; recording may fail as well, but try.
            failure = FeedError(f"database: {exc}", url=feed.url)
            failure.kind = ErrorKind.STORAGE
            return self._record_error(feed, polled_at, failure)
        except Exception as exc:
            # A bug, not the feed's fault: say so loudly, record it, keep the others going.
            log.critical("unexpected error", exc_info=exc, extra={"kv": {"feed": feed.name}})
            internal = FeedError(f"internal error: {type(exc).__name__}: {exc}", url=feed.url)
            internal.kind = ErrorKind.INTERNAL
            return self._record_error(feed, polled_at, internal)

    async def _poll(self, feed: FeedForUpdate, polled_at: datetime) -> PollResult:
        fetched = await self._fetcher.fetch(
            feed.url, etag=feed.etag, last_modified=feed.last_modified
        )
        if fetched.not_modified:
            return await self._write(_Fetched(feed, polled_at, fetched, None))
        body_hash = body_fingerprint(
            fetched.content, fetched.final_url, fetched.headers.get("content-type")
        )
        if body_hash == feed.body_hash:
            # The very document handled last time: the same items, or the same error.
            if feed.body_error is not None:
                return self._record_error(
                    feed,
                    polled_at,
                    ParseError(feed.body_error, url=fetched.final_url),
                    http_status=fetched.status,
                    body=(body_hash, feed.body_error),
                )
            return await self._write(_Fetched(feed, polled_at, replace(fetched, content=b""), None))
        try:
            prepared = await self._prepare(
                PrepareJob(
                    content=fetched.content,
                    url=fetched.final_url,
                    headers=dict(fetched.headers),
                    feed=feed.name,
                    feed_tags=feed.tags,
                    polled_at=polled_at,
                )
            )
        except ParseError as exc:
            # A stopped or crashed parse says nothing about the document: not remembered.
            body = None if isinstance(exc, ParseAborted) else (body_hash, exc.message)
            return self._record_error(feed, polled_at, exc, http_status=fetched.status, body=body)
        for warning in prepared.warnings:
            event(log, logging.WARNING, "parse warning", feed=feed.name, warning=warning)
        # The body is in the items now: do not hold it while waiting for the writer.
        return await self._write(
            _Fetched(feed, polled_at, replace(fetched, content=b""), prepared, body_hash)
        )

    # ------------------------------------------------------------------ the writer

    async def _write(self, fetched: _Fetched) -> PollResult:
        """Queue a fetched feed for the writer; its result once committed.

        Feeds that are ready together are committed together: one read of their
        stored items and ONE transaction for all of them (each still fenced on
        its own lease). A failed batch is retried feed by feed, so one feed's
        bad data or lost lease never costs the others theirs.
        """
        fetched.done = asyncio.get_running_loop().create_future()
        self._ready.append(fetched)
        if self._arrived is not None:
            self._arrived.set()
        if self._writer is None:
            # A context of its own: the writer serves every feed, so the feed
            # bound for logging by the task that happens to start it must not stick.
            self._writer = asyncio.create_task(self._drain(), context=contextvars.Context())
        return await fetched.done

    async def _drain(self) -> None:
        self._arrived = asyncio.Event()
        try:
            while self._ready:
                # Let every feed whose result is already here join this batch.
                await asyncio.sleep(0)
                await self._linger()
                batch: list[_Fetched] = []
                items = 0
                while self._ready and len(batch) < WRITE_BATCH_FEEDS and items < WRITE_BATCH_ITEMS:
                    batch.append(self._ready.popleft())
                    items += len(batch[-1].prepared.items) if batch[-1].prepared else 0
                self._commit_batch(batch)
        finally:
            self._writer = None
            self._arrived = None
            # Cancelled with feeds still waiting: they fail rather than hang.
            while self._ready:
                waiting = self._ready.popleft()
                if waiting.done is not None and not waiting.done.done():
                    waiting.done.cancel()

    async def _linger(self) -> None:
        """Wait, up to :data:`WRITE_LINGER_S`, while the batch is still small and other
        feeds are on their way to it; at once when none is (a lone feed, the last ones).

        Feeds waiting here hold their in-flight slots: the wait ends once they hold
        half of them, so fetching and parsing go on meanwhile.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WRITE_LINGER_S
        most = min(WRITE_BATCH_FEEDS, max(1, self._max_in_flight // 2))
        while self._in_progress > len(self._ready) and len(self._ready) < most:
            items = sum(len(f.prepared.items) for f in self._ready if f.prepared is not None)
            remaining = deadline - loop.time()
            if items >= WRITE_BATCH_ITEMS or remaining <= 0:
                return
            arrived = self._arrived
            assert arrived is not None  # set by _drain, which calls us
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), remaining)
            except TimeoutError:
                return

    def _commit_batch(self, batch: Sequence[_Fetched]) -> None:
        try:
            stored = self._storage.entries_for_feeds(
                {
                    f.feed.id: [i.entry_key for i in f.prepared.items]
                    for f in batch
                    if f.prepared is not None
                }
            )
        except Exception as exc:
            for fetched in batch:
                fetched.resolve_error(exc)
            return
        planned: list[tuple[_Fetched, FeedUpdateIntent]] = []
        for fetched in batch:
            try:
                planned.append((fetched, self._intent(fetched, stored.get(fetched.feed.id, {}))))
            except Exception as exc:
                fetched.resolve_error(exc)
        results: list[CommitResult | None]
        try:
            results = list(self._storage.commit_feeds([intent for _, intent in planned]))
        except Exception as exc:
            if len(planned) == 1:
                planned[0][0].resolve_error(exc)
                return
            results = []
            for fetched, intent in planned:
                try:
                    results.append(self._storage.commit_feed(intent))
                except Exception as one_exc:
                    fetched.resolve_error(one_exc)
                    results.append(None)
        if any(r is not None and r.new_deliveries for r in results):
            failpoints.hit("after-commit")
        for (fetched, _), committed in zip(planned, results, strict=True):
            if committed is not None:
                fetched.resolve(_poll_result(fetched, committed))

    def _intent(self, fetched: _Fetched, stored: Mapping[str, EntryForUpdate]) -> FeedUpdateIntent:
        """What to write for a fetched feed: pure, given what is stored."""
        feed, polled_at, result, prepared = (
            fetched.feed,
            fetched.polled_at,
            fetched.result,
            fetched.prepared,
        )
        if prepared is None:
            # A 304, or a 200 with the body handled last time, repeats the document
            # we hold: its <ttl> still counts, and nothing in it is new. A 200 is
            # still an "ok" poll (its validators replace the stored ones).
            hints = server_hints(result.headers, feed.ttl_minutes, polled_at)
            return FeedUpdateIntent(
                feed_id=feed.id,
                lease_token=feed.lease_token,
                polled_at=polled_at,
                status=PollStatus.NOT_MODIFIED if result.not_modified else PollStatus.OK,
                next_poll_at=self._next(feed, polled_at, Outcome.OK, hints=hints).at,
                moved_to=result.permanent_redirect,
                etag=result.etag,
                last_modified=result.last_modified,
                ttl_minutes=feed.ttl_minutes,
                http_status=result.status,
            )
        intents = decide_items(prepared.items, stored)
        alerts = _alerts(intents, prepared)
        publish_times = self._storage.recent_publish_times(feed.id) if self._policy.adaptive else ()
        hints = server_hints(result.headers, prepared.ttl_minutes, polled_at)
        return FeedUpdateIntent(
            feed_id=feed.id,
            lease_token=feed.lease_token,
            polled_at=polled_at,
            status=PollStatus.OK,
            next_poll_at=self._next(
                feed, polled_at, Outcome.OK, hints=hints, publish_times=publish_times
            ).at,
            moved_to=result.permanent_redirect,
            ttl_minutes=prepared.ttl_minutes,
            etag=result.etag,
            last_modified=result.last_modified,
            feed_title=prepared.title,
            http_status=result.status,
            body_hash=fetched.body_hash,
            items=tuple(intents),
            alerts=tuple(alerts),
            deliveries=plan_deliveries(self._subscribers, feed.name, feed.tags, alerts, polled_at),
        )

    def _record_error(
        self,
        feed: FeedForUpdate,
        polled_at: datetime,
        exc: FeedError,
        http_status: int | None = None,
        body: tuple[str, str] | None = None,
    ) -> PollResult:
        """Record a failed poll; ``body``: the fingerprint of a document that could
        not be parsed, and why (so that the same body is not parsed again)."""
        status = exc.status if isinstance(exc, FetchError) else http_status
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        # Stored, shown and logged: whatever of a document or a server's answer the
        # message quotes is made one printable line of bounded length here.
        message = one_line(exc.message)
        if body is not None:
            body = (body[0], one_line(body[1]))
        if status in (429, 503):
            outcome, poll_status = Outcome.RATE_LIMITED, PollStatus.RATE_LIMITED
        elif status == 410:
            outcome, poll_status = Outcome.GONE, PollStatus.ERROR
        else:
            outcome, poll_status = Outcome.ERROR, PollStatus.ERROR
        decision = self._next(feed, polled_at, outcome, retry_after=retry_after, detail=message)
        if decision.disable_reason is not None:
            event(
                log,
                logging.ERROR,
                "feed disabled",
                feed=feed.name,
                url=feed.url,
                reason=decision.disable_reason,
            )
        try:
            self._storage.commit_feed(
                FeedUpdateIntent(
                    feed_id=feed.id,
                    lease_token=feed.lease_token,
                    polled_at=polled_at,
                    status=poll_status,
                    next_poll_at=decision.at,
                    disable_reason=decision.disable_reason,
                    notices=self._notices(
                        f"feed {feed.name} disabled",
                        f"feedwatch disabled the feed {feed.name} ({feed.url}).\n"
                        f"Reason: {decision.disable_reason}.\n"
                        "It is no longer polled. Fix or change the feed in the configuration "
                        "(any change to it enables it again), or remove it.",
                    )
                    if decision.disable_reason is not None
                    else (),
                    # Validators stay as they were: storage keeps them on error.
                    etag=feed.etag,
                    last_modified=feed.last_modified,
                    error_kind=exc.kind,
                    error_message=message,
                    http_status=status,
                    body_hash=body[0] if body is not None else None,
                    body_error=body[1] if body is not None else None,
                )
            )
        except Exception as store_exc:
            log.error(
                "cannot record feed error", exc_info=store_exc, extra={"kv": {"feed": feed.name}}
            )
        return PollResult(
            feed=feed.name,
            url=feed.url,
            status=poll_status.value,
            http_status=status,
            error_kind=exc.kind.value,
            error=message,
        )

    def _notices(self, subject: str, text: str) -> tuple[Notice, ...]:
        """The operator notice for every subscriber that takes notices."""
        return tuple(Notice(s.name, subject, text) for s in self._subscribers if s.notices)

    def _next(
        self,
        feed: FeedForUpdate,
        polled_at: datetime,
        outcome: Outcome,
        *,
        hints: ServerHints = ServerHints(),  # noqa: B008 - immutable
        publish_times: Sequence[datetime] = (),
        retry_after: float | None = None,
        detail: str = "",
    ) -> NextPoll:
        errors = feed.consecutive_errors + (1 if outcome is Outcome.ERROR else 0)
        return schedule_next(
            polled_at,
            interval=feed.interval,
            policy=self._policy,
            outcome=outcome,
            jitter=self._rand(),
            consecutive_errors=errors,
            failing_since=feed.failing_since or polled_at,
            retry_after=retry_after,
            hints=hints,
            publish_times=publish_times,
            detail=detail,
        )


def _alerts(intents: Sequence[ItemIntent], prepared: Prepared) -> list[AlertIntent]:
    """The alerts of new and updated items: their rule matches, in item order."""
    return [
        AlertIntent(match.rule, intent.item.entry_key, match.spans)
        for intent in intents
        for match in prepared.matches.get(intent.item.entry_key, ())
    ]


def _poll_result(fetched: _Fetched, committed: CommitResult) -> PollResult:
    feed, prepared = fetched.feed, fetched.prepared
    if prepared is None:
        status = PollStatus.NOT_MODIFIED if fetched.result.not_modified else PollStatus.OK
        return PollResult(feed.name, feed.url, status.value, http_status=fetched.result.status)
    return PollResult(
        feed=feed.name,
        url=feed.url,
        status=PollStatus.OK.value,
        new=committed.new_items,
        updated=committed.updated_items,
        alerts=committed.new_alerts,
        seen=len(prepared.items),
        http_status=fetched.result.status,
        warnings=prepared.warnings,
    )


def _with_elapsed(result: PollResult, elapsed: float) -> PollResult:
    return replace(result, elapsed=elapsed)
