"""The composition root: picks the concrete adapters and wires the pipeline.

``make_app(config)`` is the only place that chooses implementations; the CLI
(and later the daemon) talk to the :class:`Feedwatch` facade only. Contains no
business logic of its own.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from ._model import MatchInput, RuleMatch, RuleSpec, SendResult
from .config import Config
from .dispatch import Dispatcher, DispatchSummary, Sender
from .exceptions import ConfigError, ConfigProblem
from .fetch import Fetcher, HttpFetcher, WebhookClient
from .pipeline import Pipeline
from .storage.base import StorageType, SyncReport
from .storage.sql import open_storage
from .types import (
    Backtest,
    BacktestMatch,
    DeliveryStatus,
    FeedStatus,
    ItemForMatching,
    MatchedSpan,
    PollResult,
    RuleStatus,
    RuleTrial,
    StoredAlert,
    StoredItem,
    SubscriberStatus,
)
from .workers import PreparePool, parse_workers

if TYPE_CHECKING:
    from .rules import Matcher

#: The window of :attr:`RuleStatus.alerts_7d`.
RECENT_ALERTS = timedelta(days=7)

#: Stored items read per round trip by a backtest (memory stays bounded by one batch).
BACKTEST_BATCH = 500

#: Fields a span can point into, in display order.
SPAN_FIELDS = ("title", "content", "author", "feed")

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Channels(Protocol):
    """The senders of every channel, and what they hold open."""

    senders: Mapping[str, Sender]

    async def aclose(self) -> None: ...


class _RealChannels:
    """SMTP and webhooks; webhooks share the feed fetcher's SSRF guard and allow-list."""

    def __init__(self, config: Config) -> None:
        # Imported here: a poll with no subscriber never needs smtplib or the payloads.
        from .email_out import SmtpSender
        from .webhook import WebhookSender

        self._client = WebhookClient(config.fetch)
        self.senders: Mapping[str, Sender] = {
            "email": SmtpSender(),
            "webhook": WebhookSender(self._client, user_agent=config.fetch.user_agent),
        }

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass(frozen=True, slots=True)
class PollSummary:
    """The outcome of one ``poll``: per-feed results and totals."""

    results: tuple[PollResult, ...]
    started_at: datetime
    elapsed: float
    sync: Mapping[str, SyncReport] = field(default_factory=dict)
    #: The deliveries attempted after polling.
    deliveries: DispatchSummary = field(default_factory=DispatchSummary)

    @property
    def failed(self) -> tuple[PollResult, ...]:
        return tuple(r for r in self.results if r.failed)

    def totals(self) -> dict[str, int]:
        return {
            "feeds": len(self.results),
            "ok": sum(r.status == "ok" for r in self.results),
            "not_modified": sum(r.status == "not_modified" for r in self.results),
            "failed": len(self.failed),
            "new": sum(r.new for r in self.results),
            "updated": sum(r.updated for r in self.results),
            "alerts": sum(r.alerts for r in self.results),
        }


class Feedwatch:
    """Facade over storage and the poll pipeline."""

    def __init__(
        self,
        config: Config,
        storage: StorageType,
        *,
        fetcher_factory: Callable[[], Fetcher],
        channels_factory: Callable[[], Channels] | None = None,
        clock: Clock = _utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.storage = storage
        self._fetcher_factory = fetcher_factory
        self._channels_factory = channels_factory or (lambda: _RealChannels(config))
        self._clock = clock
        self._rand = rand

    def close(self) -> None:
        self.storage.close()

    def sync(self) -> dict[str, SyncReport]:
        """Bring the schema up to date and store the configured feeds, rules and subscribers."""
        self.storage.migrate()
        return self.storage.sync_config(
            self.config.feeds, self.config.rules, self.config.subscribers, self._clock()
        )

    async def poll(
        self,
        names: Sequence[str] | None = None,
        *,
        on_start: Callable[[int], None] | None = None,
        on_result: Callable[[PollResult], None] | None = None,
    ) -> PollSummary:
        """Poll every active feed (or those named) once; each feed commits on its own."""
        sync = self.sync()
        if names:
            known = {f.name for f in self.config.feeds if f.enabled}
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ConfigError(
                    [ConfigProblem("", f"no enabled feed named {n!r}") for n in unknown],
                    self.config.file,
                )
        feeds = self.storage.feeds_for_poll(names or None)
        if on_start is not None:
            on_start(len(feeds))
        started_at = self._clock()
        fetcher = self._fetcher_factory()
        workers = PreparePool(
            rules=self.config.rules,
            workers=parse_workers(),
            budget=self.config.scheduler.parse_timeout,
            max_items=self.config.fetch.max_items,
        )
        try:
            # Each worker starts with the first document it gets: a poll that
            # hears only 304s starts none.
            pipeline = Pipeline(
                self.storage,
                fetcher,
                workers,
                clock=self._clock,
                rand=self._rand,
                subscribers=self.config.subscribers,
                policy=self.config.scheduler,
                max_in_flight=2 * self.config.fetch.concurrency,
            )
            results = await pipeline.poll(feeds, on_result)
        finally:
            await fetcher.aclose()
            await workers.aclose()
        deliveries = await self.dispatch(synced=True)
        elapsed = (self._clock() - started_at).total_seconds()
        return PollSummary(tuple(results), started_at, elapsed, sync, deliveries)

    async def dispatch(self, *, synced: bool = False) -> DispatchSummary:
        """Send every delivery that is due now, once each; retries wait for their time."""
        if not synced:
            self.sync()
        if not self.config.subscribers:
            # Only configured subscribers' deliveries are ever claimed.
            return DispatchSummary()
        channels = self._channels_factory()
        try:
            return await self._dispatcher(channels).dispatch_due()
        finally:
            await channels.aclose()

    async def test_subscriber(self, name: str) -> SendResult:
        """Send a clearly marked test message to ``name`` and say what really happened.

        Raises:
            KeyError: no subscriber of that name is configured.
        """
        if name not in {s.name for s in self.config.subscribers}:
            raise KeyError(name)
        channels = self._channels_factory()
        try:
            return await self._dispatcher(channels).send_test(name)
        finally:
            await channels.aclose()

    def _dispatcher(self, channels: Channels) -> Dispatcher:
        return Dispatcher(
            self.storage,
            self.config.subscribers,
            channels.senders,
            clock=self._clock,
            rand=self._rand,
        )

    def deliveries(
        self, status: str | None = None, subscriber: str | None = None, limit: int | None = None
    ) -> list[DeliveryStatus]:
        self.storage.migrate()
        return self.storage.list_deliveries(status, subscriber, limit)

    def retry_deliveries(
        self, ids: Sequence[int] | None = None, *, subscriber: str | None = None
    ) -> tuple[list[int], list[str]]:
        """Requeue the given deliveries, or every failed one; see StorageType.retry_deliveries."""
        self.storage.migrate()
        return self.storage.retry_deliveries(self._clock(), ids, subscriber=subscriber)

    def subscribers(self) -> list[SubscriberStatus]:
        self.sync()
        return self.storage.list_subscribers()

    def feeds(self, include_inactive: bool = False) -> list[FeedStatus]:
        self.storage.migrate()
        return self.storage.list_feeds(include_inactive)

    def items(
        self, feed: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[StoredItem]:
        self.storage.migrate()
        return self.storage.list_items(feed, since, limit)

    def alerts(
        self, rule: str | None = None, since: datetime | None = None, limit: int | None = None
    ) -> list[StoredAlert]:
        self.storage.migrate()
        return self.storage.list_alerts(rule, since, limit)

    def rules(self, include_inactive: bool = False) -> list[RuleStatus]:
        """The configured rules in configuration order, with their alert counts.

        Counts are looked up by name, so a rule renamed in the file shows its
        history once a poll has synced the rename. ``include_inactive`` appends the
        stored rules no longer configured (``active=False``), by name.
        """
        self.storage.migrate()
        stored = {s.name: s for s in self.storage.rule_stats(self._clock() - RECENT_ALERTS)}
        listed: list[RuleStatus] = []
        for spec in self.config.rules:
            stats = stored.get(spec.name)
            listed.append(
                RuleStatus(
                    name=spec.name,
                    query=spec.query,
                    active=True,
                    alerts=stats.alerts if stats else 0,
                    alerts_7d=stats.alerts_7d if stats else 0,
                    last_alert_at=stats.last_alert_at if stats else None,
                )
            )
        if include_inactive:
            configured = {spec.name for spec in self.config.rules}
            listed.extend(
                replace(stats, active=False)
                for name, stats in stored.items()
                if name not in configured
            )
        return listed

    def backtest(
        self,
        target: str,
        since: datetime | None = None,
        limit: int = 50,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> Backtest:
        """Run a configured rule (``target`` is its name) or an ad-hoc query over the
        stored items with ``sort_at >= since``, newest first. Writes nothing.

        Items are read in batches of :data:`BACKTEST_BATCH`; ``on_progress`` gets the
        number of items looked at so far after each batch. Keeps the first ``limit``
        matches; counts all of them, per feed.

        Raises:
            RuleSyntaxError: ``target`` is no rule name and not a valid query.
            StorageError: the database cannot be read.
        """
        rule = next((spec for spec in self.config.rules if spec.name == target), None)
        query = rule.query if rule is not None else target
        matcher = _compile_one(query)
        self.storage.migrate()
        scanned = matched = 0
        per_feed: Counter[str] = Counter()
        shown: list[BacktestMatch] = []
        for batch in self.storage.iter_items_for_matching(since, BACKTEST_BATCH):
            for item in batch:
                subject = _match_input(item)
                found = matcher.match(subject)
                if not found:
                    continue
                matched += 1
                per_feed[item.feed] += 1
                if len(shown) < limit:
                    shown.append(
                        BacktestMatch(
                            item_id=item.id,
                            feed=item.feed,
                            title=item.title,
                            url=item.url,
                            sort_at=item.sort_at,
                            spans=_matched_spans(subject, found),
                            item_text=item.content_text,
                        )
                    )
            scanned += len(batch)
            if on_progress is not None:
                on_progress(scanned)
        return Backtest(
            rule=rule.name if rule is not None else None,
            query=query,
            since=since,
            scanned=scanned,
            matched=matched,
            per_feed=tuple(sorted(per_feed.items(), key=lambda kv: (-kv[1], kv[0]))),
            matches=tuple(shown),
        )

    def now(self) -> datetime:
        return self._clock()


def try_rule(
    query: str,
    *,
    title: str = "",
    content: str = "",
    author: str = "",
    feed: str = "",
    tags: Iterable[str] = (),
    lang: str | None = None,
) -> RuleTrial:
    """Match one query against text given by hand. Needs no configuration and no database.

    Raises:
        RuleSyntaxError: the query is invalid (with the 1-based column).
    """
    subject = MatchInput(
        title=title, content=content, author=author, feed=feed, tags=tuple(tags), lang=lang
    )
    found = _compile_one(query).match(subject)
    return RuleTrial(query=query, matched=bool(found), spans=_matched_spans(subject, found))


def _compile_one(query: str) -> Matcher:
    # Imported here: polling never compiles rules in this process (the workers do).
    from .rules import check_query, compile_rules

    check_query(query)
    return compile_rules([RuleSpec(name="query", query=query)])


def _match_input(item: ItemForMatching) -> MatchInput:
    """What the rules see of a stored item: the same fields as during a poll."""
    return MatchInput(
        title=item.title,
        content=item.content_text,
        author=item.author or "",
        feed=item.feed,
        tags=(*item.feed_tags, *item.tags),
        lang=item.language,
    )


def _matched_spans(subject: MatchInput, found: Sequence[RuleMatch]) -> tuple[MatchedSpan, ...]:
    """The spans of the matches, each once, in field then text order, with their text."""
    texts = {
        "title": subject.title,
        "content": subject.content,
        "author": subject.author,
        "feed": subject.feed,
    }
    unique = {(s.field, s.start, s.end) for match in found for s in match.spans}
    order = {name: position for position, name in enumerate(SPAN_FIELDS)}
    return tuple(
        MatchedSpan(field=name, start=start, end=end, text=texts.get(name, "")[start:end])
        for name, start, end in sorted(unique, key=lambda s: (order.get(s[0], len(order)), s))
    )


def make_app(
    config: Config,
    *,
    storage: StorageType | None = None,
    fetcher_factory: Callable[[], Fetcher] | None = None,
    channels_factory: Callable[[], Channels] | None = None,
    clock: Clock | None = None,
    rand: Callable[[], float] | None = None,
) -> Feedwatch:
    """Build a :class:`Feedwatch` with the real adapters unless others are given."""
    return Feedwatch(
        config,
        storage if storage is not None else open_storage(config.database_url),
        fetcher_factory=fetcher_factory
        or (lambda: HttpFetcher(config.fetch, clock=clock or _utcnow)),
        channels_factory=channels_factory,
        clock=clock or _utcnow,
        rand=rand or random.random,
    )
