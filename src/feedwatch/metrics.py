"""Prometheus metrics of the daemon; the only module importing ``prometheus_client``.

Does:
  * count what the daemon reports as it happens (:meth:`Metrics.observe_poll`,
    :meth:`Metrics.observe_delivery`, the scheduler's lag and heartbeat);
  * read the state gauges (feeds by state, the outbox backlog) from storage at
    scrape time, then render the text exposition format (:meth:`Metrics.render`).

Does not:
  * use prometheus_client's global registry: each :class:`Metrics` has its own,
    so two instances (tests, two apps in one process) never share or clash;
  * serve HTTP (``server.py`` does) or read the clock (times come in as arguments).

Metrics::

    feedwatch_polls_total{outcome}                    ok | not_modified | error | rate_limited
    feedwatch_fetch_seconds                           histogram, 10 ms .. 60 s
    feedwatch_items_new_total, feedwatch_items_updated_total, feedwatch_alerts_total
    feedwatch_feed_errors_total{kind}                 timeout, http_status, parse, ...
    feedwatch_deliveries_total{kind,outcome}          alert | digest x sent | pending | failed
    feedwatch_scheduler_lag_seconds                   gauge, set by the scheduler
    feedwatch_scheduler_heartbeat_timestamp_seconds   gauge, Unix time of the last tick
    feedwatch_feeds{state}                            active feeds: new | ok | not_modified |
                                                      error | disabled (read at scrape)
    feedwatch_deliveries_pending                      read at scrape
    feedwatch_delivery_oldest_pending_age_seconds     read at scrape; 0 when none is pending
    feedwatch_database_up                             1 if the scrape could read the database
    process_*, python_info                            the usual process collectors
"""

from __future__ import annotations

import logging
import threading
from collections import Counter as Tally
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from ._logging import event, get_logger
from .exceptions import ErrorKind, StorageError

if TYPE_CHECKING:  # pragma: no cover
    from .dispatch import DispatchResult
    from .storage.base import StorageType
    from .types import FeedStatus, PollResult

__all__ = ["CONTENT_TYPE", "FETCH_BUCKETS", "Metrics"]

log = get_logger(__name__)

#: The classic text format (0.0.4), which every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Buckets of ``feedwatch_fetch_seconds``: a fast 304 takes ~10 ms, the fetch deadline is 30-60 s.
FETCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0)

#: Label values created up front, so that their series exist (at 0) before the first event
#: and ``rate()``/``increase()`` see the first one.
POLL_OUTCOMES = ("ok", "not_modified", "error", "rate_limited")
DELIVERY_KINDS = ("alert", "digest")
DELIVERY_OUTCOMES = ("sent", "pending", "failed")
FEED_STATES = ("new", "ok", "not_modified", "error", "disabled")


class Metrics:
    """The daemon's metrics, in a registry of their own. Thread-safe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Serialises render(): refreshing the state gauges then reading them must not
        # interleave with another scrape's refresh.
        self._render_lock = threading.Lock()
        r = self.registry
        self._polls = Counter("feedwatch_polls", "Feed polls, by outcome.", ["outcome"], registry=r)
        self._fetch_seconds = Histogram(
            "feedwatch_fetch_seconds",
            "Seconds from the start of a feed's fetch to its commit.",
            buckets=FETCH_BUCKETS,
            registry=r,
        )
        self._items_new = Counter("feedwatch_items_new", "New items stored.", registry=r)
        self._items_updated = Counter(
            "feedwatch_items_updated", "Stored items whose content changed.", registry=r
        )
        self._alerts = Counter("feedwatch_alerts", "Alerts raised by rules.", registry=r)
        self._feed_errors = Counter(
            "feedwatch_feed_errors", "Failed polls, by error kind.", ["kind"], registry=r
        )
        self._deliveries = Counter(
            "feedwatch_deliveries",
            "Delivery attempts, by kind and outcome (pending: will retry).",
            ["kind", "outcome"],
            registry=r,
        )
        self._lag = Gauge(
            "feedwatch_scheduler_lag_seconds",
            "How late the scheduler's last tick ran, in seconds.",
            registry=r,
        )
        self._heartbeat = Gauge(
            "feedwatch_scheduler_heartbeat_timestamp_seconds",
            "Unix time of the scheduler's last tick.",
            registry=r,
        )
        self._feeds = Gauge("feedwatch_feeds", "Active feeds, by state.", ["state"], registry=r)
        self._pending = Gauge(
            "feedwatch_deliveries_pending", "Deliveries waiting to be sent.", registry=r
        )
        self._oldest_pending = Gauge(
            "feedwatch_delivery_oldest_pending_age_seconds",
            "Age of the oldest pending delivery in seconds (0 when none is pending).",
            registry=r,
        )
        self._database_up = Gauge(
            "feedwatch_database_up",
            "1 if the last scrape could read the database, else 0.",
            registry=r,
        )
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

        for outcome in POLL_OUTCOMES:
            self._polls.labels(outcome=outcome)
        for kind in ErrorKind:
            self._feed_errors.labels(kind=kind.value)
        for delivery_kind in DELIVERY_KINDS:
            for outcome in DELIVERY_OUTCOMES:
                self._deliveries.labels(kind=delivery_kind, outcome=outcome)
        for state in FEED_STATES:
            self._feeds.labels(state=state)

    # ------------------------------------------------------------------ events

    def observe_poll(self, result: PollResult) -> None:
        """Count one poll of one feed: its outcome, duration, items, alerts and error."""
        self._polls.labels(outcome=result.status).inc()
        self._fetch_seconds.observe(max(result.elapsed, 0.0))
        if result.new:
            self._items_new.inc(result.new)
        if result.updated:
            self._items_updated.inc(result.updated)
        if result.alerts:
            self._alerts.inc(result.alerts)
        if result.status == "error" or result.error_kind is not None:
            self._feed_errors.labels(kind=result.error_kind or "unknown").inc()

    def observe_delivery(self, result: DispatchResult) -> None:
        """Count one attempt of one delivery (``pending`` means it will be retried)."""
        self._deliveries.labels(kind=result.kind, outcome=result.status).inc()

    def set_scheduler_lag(self, seconds: float) -> None:
        self._lag.set(seconds)

    def heartbeat(self, now_ts: float) -> None:
        """Record a scheduler tick at Unix time ``now_ts``."""
        self._heartbeat.set(now_ts)

    # ------------------------------------------------------------------ scrape

    def render(self, storage: StorageType, now: datetime) -> tuple[bytes, str]:
        """Refresh the state gauges from ``storage``, then render every metric.

        Returns the body and its content type. If the database cannot be read, the
        state gauges keep their last values, ``feedwatch_database_up`` drops to 0 and
        the rest is rendered anyway (the counters are what tells what went wrong).
        """
        with self._render_lock:
            try:
                self._refresh(storage, now)
            except StorageError as exc:
                event(log, logging.WARNING, "metrics_storage_failed", error=str(exc))
                self._database_up.set(0)
            else:
                self._database_up.set(1)
            return generate_latest(self.registry), CONTENT_TYPE

    def _refresh(self, storage: StorageType, now: datetime) -> None:
        # Read everything first, so a failure leaves the previous values whole.
        states: Tally[str] = Tally(_feed_state(f) for f in storage.list_feeds())
        pending, oldest_age = storage.delivery_stats(now)
        # States no feed is in any more disappear; the usual ones stay, at 0.
        self._feeds.clear()
        for state in FEED_STATES:
            self._feeds.labels(state=state).set(0)
        for state, count in states.items():
            self._feeds.labels(state=state).set(count)
        self._pending.set(pending)
        self._oldest_pending.set(oldest_age or 0.0)


def _feed_state(feed: FeedStatus) -> str:
    """``disabled`` if the feed was disabled, else its last poll status or ``new``."""
    if feed.disabled_at is not None:
        return "disabled"
    return feed.status or "new"
