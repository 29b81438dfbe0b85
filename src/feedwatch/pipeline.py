"""The "do it" side of a poll: calls the stages in order, one feed at a time per task.

Does not decide anything itself (``decide``, ``rules`` and ``normalise`` do) and
does not know which fetcher, parser runner or database it talks to::

    feeds (from storage)
    | fetch          Fetcher.fetch, concurrently (the fetcher bounds global and per-host load)
    | parse          ParseRunner (inline, or a process pool): bytes + headers -> ParsedFeed
    | normalise      pure: ParsedFeed -> Items
    | stored         storage.entries_for_update
    | decide         pure: new / updated items, next poll time
    | match          pure: Matcher over new and updated items -> alerts
    | plan           pure: which subscribers get which alert (outbox.plan_deliveries)
    | commit         storage.commit_feed: feed state + items + alerts + deliveries, ONE transaction

One failing feed yields an error result and never stops the others; every
error is recorded on its feed with its kind. Nothing holds a transaction
while fetching.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from . import _failpoints as failpoints
from ._logging import bind, event, get_logger
from ._model import (
    AlertIntent,
    FeedForUpdate,
    FeedUpdateIntent,
    FetchResult,
    ItemIntent,
    MatchInput,
    Notice,
    ParsedFeed,
    PollStatus,
    SchedulerOptions,
    SubscriberSpec,
)
from .decide import NextPoll, Outcome, ServerHints, decide_items, schedule_next, server_hints
from .exceptions import ErrorKind, FeedError, FetchError, ParseError, StorageError
from .fetch import Fetcher
from .normalise import normalise_entries
from .outbox import plan_deliveries
from .rules import Matcher
from .storage.base import StorageType
from .types import PollResult

log = get_logger(__name__)

#: Runs ``parse_document(content, url=..., headers=...)``; inline or in a worker process.
ParseRunner = Callable[[bytes, str, Mapping[str, str]], Awaitable[ParsedFeed]]

Clock = Callable[[], datetime]


class Pipeline:
    """Poll feeds through fetch, parse, normalise, decide, match and commit."""

    def __init__(
        self,
        storage: StorageType,
        fetcher: Fetcher,
        matcher: Matcher,
        parse: ParseRunner,
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
        self._matcher = matcher
        self._parse = parse
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
        try:
            result = await self._poll(feed, polled_at)
        except FeedError as exc:
            result = self._record_error(feed, polled_at, exc)
        except StorageError as exc:
            # The database failed for this feed; recording may fail as well, but try.
            failure = FeedError(f"database: {exc}", url=feed.url)
            failure.kind = ErrorKind.STORAGE
            result = self._record_error(feed, polled_at, failure)
        except Exception as exc:
            # A bug, not the feed's fault: say so loudly, record it, keep the others going.
            log.critical("unexpected error", exc_info=exc, extra={"kv": {"feed": feed.name}})
            internal = FeedError(f"internal error: {type(exc).__name__}: {exc}", url=feed.url)
            internal.kind = ErrorKind.INTERNAL
            result = self._record_error(feed, polled_at, internal)
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

    async def _poll(self, feed: FeedForUpdate, polled_at: datetime) -> PollResult:
        fetched = await self._fetcher.fetch(
            feed.url, etag=feed.etag, last_modified=feed.last_modified
        )
        if fetched.not_modified:
            return self._commit_not_modified(feed, polled_at, fetched)
        try:
            parsed = await self._parse(fetched.content, fetched.final_url, fetched.headers)
        except ParseError as exc:
            return self._record_error(feed, polled_at, exc, http_status=fetched.status)
        items, warnings = normalise_entries(parsed, feed_url=fetched.final_url, now=polled_at)
        for warning in (*parsed.warnings, *warnings):
            event(log, logging.WARNING, "parse warning", feed=feed.name, warning=warning)
        stored = self._storage.entries_for_update(feed.id, [i.entry_key for i in items])
        intents = decide_items(items, stored)
        alerts = self._match(feed, intents)
        publish_times = self._storage.recent_publish_times(feed.id) if self._policy.adaptive else ()
        hints = server_hints(fetched.headers, parsed.ttl_minutes, polled_at)
        committed = self._storage.commit_feed(
            FeedUpdateIntent(
                feed_id=feed.id,
                lease_token=feed.lease_token,
                polled_at=polled_at,
                status=PollStatus.OK,
                next_poll_at=self._next(
                    feed, polled_at, Outcome.OK, hints=hints, publish_times=publish_times
                ).at,
                moved_to=fetched.permanent_redirect,
                ttl_minutes=parsed.ttl_minutes,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                feed_title=parsed.title,
                http_status=fetched.status,
                items=tuple(intents),
                alerts=tuple(alerts),
                deliveries=plan_deliveries(
                    self._subscribers, feed.name, feed.tags, alerts, polled_at
                ),
            )
        )
        if committed.new_deliveries:
            failpoints.hit("after-commit")
        return PollResult(
            feed=feed.name,
            url=feed.url,
            status=PollStatus.OK.value,
            new=committed.new_items,
            updated=committed.updated_items,
            alerts=committed.new_alerts,
            seen=len(items),
            http_status=fetched.status,
            warnings=(*parsed.warnings, *warnings),
        )

    def _match(self, feed: FeedForUpdate, intents: Sequence[ItemIntent]) -> list[AlertIntent]:
        alerts: list[AlertIntent] = []
        for intent in intents:
            item = intent.item
            subject = MatchInput(
                title=item.title,
                content=item.content_text,
                author=item.author or "",
                feed=feed.name,
                tags=(*feed.tags, *item.tags),
                lang=item.language,
            )
            for match in self._matcher.match(subject):
                alerts.append(AlertIntent(match.rule, item.entry_key, match.spans))
        return alerts

    def _commit_not_modified(
        self, feed: FeedForUpdate, polled_at: datetime, fetched: FetchResult
    ) -> PollResult:
        # A 304 repeats the document we hold: its <ttl> still counts.
        hints = server_hints(fetched.headers, feed.ttl_minutes, polled_at)
        self._storage.commit_feed(
            FeedUpdateIntent(
                feed_id=feed.id,
                lease_token=feed.lease_token,
                polled_at=polled_at,
                status=PollStatus.NOT_MODIFIED,
                next_poll_at=self._next(feed, polled_at, Outcome.OK, hints=hints).at,
                moved_to=fetched.permanent_redirect,
                etag=fetched.etag,
                last_modified=fetched.last_modified,
                http_status=fetched.status,
            )
        )
        return PollResult(feed.name, feed.url, PollStatus.NOT_MODIFIED.value, http_status=304)

    def _record_error(
        self,
        feed: FeedForUpdate,
        polled_at: datetime,
        exc: FeedError,
        http_status: int | None = None,
    ) -> PollResult:
        status = exc.status if isinstance(exc, FetchError) else http_status
        retry_after = exc.retry_after if isinstance(exc, FetchError) else None
        if status in (429, 503):
            outcome, poll_status = Outcome.RATE_LIMITED, PollStatus.RATE_LIMITED
        elif status == 410:
            outcome, poll_status = Outcome.GONE, PollStatus.ERROR
        else:
            outcome, poll_status = Outcome.ERROR, PollStatus.ERROR
        decision = self._next(feed, polled_at, outcome, retry_after=retry_after, detail=exc.message)
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
                    error_message=exc.message,
                    http_status=status,
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
            error=exc.message,
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


def _with_elapsed(result: PollResult, elapsed: float) -> PollResult:
    return replace(result, elapsed=elapsed)
