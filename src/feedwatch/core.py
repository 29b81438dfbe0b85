"""The composition root: picks the concrete adapters and wires the pipeline.

``make_app(config)`` is the only place that chooses implementations; the CLI
(and later the daemon) talk to the :class:`Feedwatch` facade only. Contains no
business logic of its own.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ._model import ParsedFeed
from .config import Config
from .exceptions import ConfigError, ConfigProblem
from .fetch import Fetcher, HttpFetcher
from .parse import parse_document
from .pipeline import Pipeline
from .rules import Matcher, compile_rules
from .storage.base import StorageType, SyncReport
from .storage.sql import open_storage
from .types import FeedStatus, PollResult, StoredAlert, StoredItem

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _ThreadParser:
    """Parses off the event loop, one document at a time.

    A large document must never stall the other feeds' fetches, whose deadlines
    keep running while the loop is busy; one thread at a time keeps the GIL
    contention and the memory of documents in flight low. ``parse_document`` is
    pure and picklable, so a process pool can take this place.
    """

    def __init__(self) -> None:
        self._one = asyncio.Semaphore(1)

    async def __call__(self, content: bytes, url: str, headers: Mapping[str, str]) -> ParsedFeed:
        async with self._one:
            return await asyncio.to_thread(parse_document, content, url=url, headers=headers)


@dataclass(frozen=True, slots=True)
class PollSummary:
    """The outcome of one ``poll``: per-feed results and totals."""

    results: tuple[PollResult, ...]
    started_at: datetime
    elapsed: float
    sync: Mapping[str, SyncReport] = field(default_factory=dict)

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
        clock: Clock = _utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.storage = storage
        self._fetcher_factory = fetcher_factory
        self._clock = clock
        self._rand = rand
        self._matcher: Matcher = compile_rules(config.rules)

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
        try:
            pipeline = Pipeline(
                self.storage,
                fetcher,
                self._matcher,
                _ThreadParser(),
                clock=self._clock,
                rand=self._rand,
            )
            results = await pipeline.poll(feeds, on_result)
        finally:
            await fetcher.aclose()
        elapsed = (self._clock() - started_at).total_seconds()
        return PollSummary(tuple(results), started_at, elapsed, sync)

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

    def now(self) -> datetime:
        return self._clock()


def make_app(
    config: Config,
    *,
    storage: StorageType | None = None,
    fetcher_factory: Callable[[], Fetcher] | None = None,
    clock: Clock | None = None,
    rand: Callable[[], float] | None = None,
) -> Feedwatch:
    """Build a :class:`Feedwatch` with the real adapters unless others are given."""
    return Feedwatch(
        config,
        storage if storage is not None else open_storage(config.database_url),
        fetcher_factory=fetcher_factory or (lambda: HttpFetcher(config.fetch)),
        clock=clock or _utcnow,
        rand=rand or random.random,
    )
