"""The storage contract: what the pipeline, core and CLI may ask of the database.

Contains no SQL. Any method may raise :class:`feedwatch.exceptions.StorageError`.
All datetimes going in and out are timezone-aware UTC. No method keeps a
transaction open after it returns, so callers never hold one across network I/O.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .._model import (
    CommitResult,
    DeliveryJob,
    EntryForUpdate,
    FeedForUpdate,
    FeedSpec,
    FeedUpdateIntent,
    Notice,
    RuleSpec,
    SubscriberSpec,
)
from ..types import (
    DeliveryStatus,
    FeedStatus,
    ItemForMatching,
    RuleStatus,
    StoredAlert,
    StoredItem,
    SubscriberStatus,
)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What syncing the configuration into storage changed (names)."""

    added: tuple[str, ...] = ()
    renamed: tuple[tuple[str, str], ...] = ()
    updated: tuple[str, ...] = ()
    deactivated: tuple[str, ...] = ()
    reactivated: tuple[str, ...] = ()


class StorageType(Protocol):
    """Storage DAO protocol."""

    def migrate(self) -> None:
        """Bring the schema up to date (Alembic); safe to call on every start."""

    def close(self) -> None:
        """Release connections."""

    def sync_config(
        self,
        feeds: Sequence[FeedSpec],
        rules: Sequence[RuleSpec],
        subscribers: Sequence[SubscriberSpec],
        now: datetime,
    ) -> dict[str, SyncReport]:
        """Make the stored feeds, rules and subscribers match the configuration, by name.

        Names not in the configuration are deactivated (history kept). A feed
        whose name is new but whose URL belongs to a feed that left the
        configuration is a rename (so is a rule with the same query). Returns a
        report per kind: ``{"feeds": ..., "rules": ..., "subscribers": ...}``.
        """

    def feeds_for_poll(self, names: Sequence[str] | None = None) -> list[FeedForUpdate]:
        """The active feeds (all, or those named), ordered by name. Unknown names are ignored."""

    def claim_due_feeds(
        self, now: datetime, limit: int, lease_seconds: float, token: str
    ) -> list[FeedForUpdate]:
        """Claim up to ``limit`` active feeds whose next poll time has come.

        Sets their next poll time to ``now + lease_seconds`` and their lease to
        ``token`` in one statement (``FOR UPDATE SKIP LOCKED`` on PostgreSQL),
        so two workers never claim the same feed.
        """

    def entries_for_update(self, feed_id: int, keys: Sequence[str]) -> dict[str, EntryForUpdate]:
        """The stored items of a feed with these entry keys, keyed by entry key."""

    def entries_for_feeds(
        self, keys_by_feed: Mapping[int, Sequence[str]]
    ) -> dict[int, dict[str, EntryForUpdate]]:
        """:meth:`entries_for_update` for several feeds at once, in one transaction."""

    def commit_feeds(self, intents: Sequence[FeedUpdateIntent]) -> list[CommitResult]:
        """:meth:`commit_feed` for several polls in ONE transaction, results in order.

        Each intent is fenced on its own lease. If the transaction fails, nothing
        of any of them is written (the caller may retry them one by one).
        """

    def commit_feed(self, intent: FeedUpdateIntent) -> CommitResult:
        """Write one poll's outcome in ONE transaction: feed state, items, alerts.

        When ``intent.lease_token`` is set and the feed's lease is no longer that
        token, nothing is written (``written=False``). Items are unique per
        (feed, entry key); alerts per (rule, item) and per (rule, story), the story
        being the item's canonical URL in any feed (an item without one is its own
        story): writing twice adds nothing, and deliveries are written only for the
        alerts inserted. Alerts name their item by entry key; each must be among
        ``intent.items`` or already stored. Clears the lease.
        """

    def list_feeds(self, include_inactive: bool = False) -> list[FeedStatus]:
        """Every feed with its polling state, ordered by name."""

    def disabled_feeds(self) -> list[tuple[str, str]]:
        """(name, reason) of the active feeds the polling policy disabled, by name
        (one cheap query: ``/healthz`` asks on every probe)."""

    def recent_publish_times(self, feed_id: int, limit: int = 20) -> list[datetime]:
        """The ``sort_at`` times of the feed's newest items, newest first (for the
        adaptive interval)."""

    def list_items(
        self,
        feed: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[StoredItem]:
        """Stored items, newest first (by ``sort_at``), optionally filtered."""

    def list_alerts(
        self,
        rule: str | None = None,
        since: datetime | None = None,
        limit: int | None = None,
    ) -> list[StoredAlert]:
        """Stored alerts, newest first (by creation time), optionally filtered."""

    def rule_stats(self, recent_since: datetime) -> list[RuleStatus]:
        """Every stored rule, active or not, with its alert counts, ordered by name.

        ``alerts`` counts all the rule's alerts, ``alerts_7d`` those created at or
        after ``recent_since`` (the caller picks the window), ``last_alert_at`` is
        the newest one's creation time. ``active`` is as last synced.
        """

    def iter_items_for_matching(
        self, since: datetime | None = None, batch_size: int = 500
    ) -> Iterator[list[ItemForMatching]]:
        """Stored items with ``sort_at >= since`` (all when None), in batches of at most
        ``batch_size`` (at least 1), newest first (by ``sort_at``, then id).

        Each batch is read in its own short transaction (keyset pagination), so no
        transaction is open while the caller works on a batch and memory stays bounded
        by one batch. Every item stored before the iteration starts, and not changed
        while it runs, is yielded exactly once; items stored or changed meanwhile may
        be missed or (if their ``sort_at`` moved) seen twice. Items of feeds removed
        from the configuration are included. Nothing is written.
        """

    # ------------------------------------------------------------------ delivery

    def claim_due_deliveries(
        self, now: datetime, limit: int, lease_seconds: float, token: str
    ) -> list[DeliveryJob]:
        """Claim up to ``limit`` pending deliveries due at ``now`` (active, enabled
        subscribers), oldest due first, with the alerts they carry.

        Leases them to ``token`` until ``now + lease_seconds`` (``FOR UPDATE SKIP
        LOCKED`` on PostgreSQL) and seals digests: alerts committed later go to
        the next window. A delivery whose lease ran out is claimable again.
        """

    def record_delivery(
        self,
        delivery_id: int,
        token: str,
        *,
        status: str,
        now: datetime,
        next_attempt_at: datetime | None,
        code: int | None,
        error: str,
        disable_reason: str | None = None,
        notices: Sequence[Notice] = (),
    ) -> bool:
        """Record one attempt ("sent", "pending" with ``next_attempt_at``, or "failed"),
        fenced on the claim: False (nothing written) if ``token`` no longer holds it.

        ``disable_reason`` disables the delivery's subscriber, fails its other
        pending deliveries with that reason, and queues ``notices`` (for operators).
        """

    def list_deliveries(
        self,
        status: str | None = None,
        subscriber: str | None = None,
        limit: int | None = None,
    ) -> list[DeliveryStatus]:
        """Deliveries, newest first, optionally filtered by status and subscriber name."""

    def retry_deliveries(
        self,
        now: datetime,
        ids: Sequence[int] | None = None,
        *,
        subscriber: str | None = None,
    ) -> tuple[list[int], list[str]]:
        """Requeue deliveries (due now, attempts reset): the given ids that are not
        sent, or else every failed one (of ``subscriber`` if given). Re-enables
        their disabled subscribers. Returns (requeued ids, re-enabled subscribers).
        """

    def purge(
        self, items_before: datetime | None, deliveries_before: datetime | None
    ) -> dict[str, int]:
        """Delete history: sent and failed deliveries last touched before
        ``deliveries_before``; items first seen before ``items_before`` with their
        alerts, except items with an alert still waiting for a delivery (pending).
        None skips that part. Returns counts: ``{"items", "alerts", "deliveries"}``.
        """

    def list_subscribers(self) -> list[SubscriberStatus]:
        """Every stored subscriber with its delivery counts, by name."""

    # ------------------------------------------------------------------ daemon (HTTP face)

    def ping(self) -> None:
        """Check that the database answers (``SELECT 1``); raise StorageError if not."""

    def delivery_stats(self, now: datetime) -> tuple[int, float | None]:
        """The number of pending deliveries, and the age in seconds (at ``now``, never
        negative) of the oldest one by creation time; None when none is pending."""

    def search_items(
        self,
        *,
        feed: str | None,
        rule: str | None,
        since: datetime | None,
        q: str | None,
        limit: int | None,
        offset: int = 0,
    ) -> list[StoredItem]:
        """Stored items, newest first (by ``sort_at``, then id), filtered by every given
        criterion: the feed's name, a rule that raised an alert on the item, ``sort_at >=
        since``, and ``q`` as a case-insensitive substring of the title or the plain
        text (``%`` and ``_`` in it are literal). Items of inactive feeds are included;
        ``limit`` None returns them all.
        """
