"""The dispatch step of the outbox: claim due deliveries, send them, record outcomes.

::

    storage.claim_due_deliveries(now, batch, lease, token)   one short transaction
    | Sender.send(job, subscriber)                            no transaction open
    | outbox.after_attempt(result, attempts, now, jitter)     pure: sent / retry at / failed
    | storage.record_delivery(..., token)                     fenced on the claim token

A claim leases the row until ``now + lease_seconds``: a dispatcher that dies
after sending and before recording leaves the row to be claimed again when the
lease runs out, and the resend carries the same ``message_id`` (webhook-id,
Message-ID), so receivers can drop the duplicate. Delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from . import _failpoints as failpoints
from ._logging import event, get_logger
from ._model import DeliveryJob, Notice, SendResult, SubscriberSpec
from .outbox import DeliveryState, after_attempt
from .storage.base import StorageType

log = get_logger(__name__)

#: Seconds a claimed delivery stays leased (longer than any one send).
LEASE_SECONDS = 300.0
#: Deliveries claimed per round trip.
BATCH = 50
#: Sends in flight at once.
CONCURRENCY = 8


class Sender(Protocol):
    """A channel (email, webhook). Never raises for the receiver's or network's trouble."""

    async def send(self, job: DeliveryJob, sub: SubscriberSpec, *, now: datetime) -> SendResult:
        """Send one message; say what came of it."""
        ...


@dataclass(frozen=True, slots=True)
class DispatchResult:
    """One attempt of one delivery."""

    delivery_id: int
    subscriber: str
    kind: str
    alerts: int
    #: "sent", "pending" (will retry) or "failed".
    status: str
    code: int | None
    detail: str
    next_attempt_at: datetime | None
    #: False when the lease was lost before recording (another dispatcher took over).
    recorded: bool = True


@dataclass(frozen=True, slots=True)
class DispatchSummary:
    results: tuple[DispatchResult, ...] = ()

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


class Dispatcher:
    """Sends what the outbox holds, for the subscribers of the configuration."""

    def __init__(
        self,
        storage: StorageType,
        subscribers: Sequence[SubscriberSpec],
        senders: Mapping[str, Sender],
        *,
        clock: Callable[[], datetime],
        rand: Callable[[], float],
        lease_seconds: float = LEASE_SECONDS,
        batch: int = BATCH,
        concurrency: int = CONCURRENCY,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        # Senders get the wall clock: a webhook-timestamp, a Date header and a
        # Retry-After date are about real time even when the scheduling clock
        # is simulated (tests); in production both are the same clock.
        self._wall_clock = wall_clock
        self._storage = storage
        self._subscribers = {s.name: s for s in subscribers}
        self._senders = senders
        self._clock = clock
        self._rand = rand
        self._lease = lease_seconds
        self._batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._token = f"dispatch-{secrets.token_hex(8)}"

    async def dispatch_due(self, *, max_rounds: int = 100) -> DispatchSummary:
        """Send every delivery due now (once each); retries wait for their time."""
        results: list[DispatchResult] = []
        seen: set[int] = set()
        for _ in range(max_rounds):
            jobs = self._storage.claim_due_deliveries(
                self._clock(), self._batch, self._lease, self._token
            )
            # A delivery is attempted at most once per call, even if it is due again
            # at once (a retry with no delay cannot spin here).
            fresh = [job for job in jobs if job.id not in seen]
            if not fresh:
                break
            seen.update(job.id for job in fresh)
            results += await asyncio.gather(*(self._one(job) for job in fresh))
        return DispatchSummary(tuple(results))

    async def send_test(self, name: str) -> SendResult:
        """Send a clearly marked test message to subscriber ``name``; nothing is stored."""
        sub = self._subscribers.get(name)
        if sub is None:
            raise KeyError(name)
        now = self._clock()
        job = DeliveryJob(
            id=0,
            subscriber=name,
            kind="alert",
            message_id=f"msg_test_{secrets.token_hex(12)}",
            attempts=0,
            created_at=now,
            alerts=(),
            test=True,
        )
        return await self._send(job, sub)

    async def _one(self, job: DeliveryJob) -> DispatchResult:
        async with self._slots:
            sub = self._subscribers.get(job.subscriber)
            if job.kind == "digest" and not job.alerts:
                result = SendResult(ok=True, detail="nothing to send: the window holds no alerts")
            elif sub is None:
                result = SendResult(
                    ok=False, detail=f"subscriber {job.subscriber!r} is not in the configuration"
                )
            else:
                result = await self._send(job, sub)
            failpoints.hit("after-send")
            now = self._clock()
            outcome = after_attempt(result, job.attempts, now, self._rand())
            recorded = self._storage.record_delivery(
                job.id,
                job.lease_token,
                status=outcome.status.value,
                now=now,
                next_attempt_at=outcome.next_attempt_at,
                code=outcome.code,
                error=outcome.error if outcome.status is not DeliveryState.SENT else "",
                disable_reason=outcome.disable_reason,
                notices=self._disabled_notices(job.subscriber, outcome.disable_reason),
            )
            level = logging.INFO if outcome.status is DeliveryState.SENT else logging.WARNING
            event(
                log,
                level,
                "delivery",
                subscriber=job.subscriber,
                delivery=job.id,
                message_id=job.message_id,
                kind=job.kind,
                alerts=len(job.alerts),
                status=outcome.status.value,
                code=outcome.code if outcome.code is not None else "",
                detail=result.detail,
                retry_at=outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else "",
            )
            if outcome.disable_reason is not None:
                event(
                    log,
                    logging.ERROR,
                    "subscriber disabled",
                    subscriber=job.subscriber,
                    reason=outcome.disable_reason,
                )
            return DispatchResult(
                delivery_id=job.id,
                subscriber=job.subscriber,
                kind=job.kind,
                alerts=len(job.alerts),
                status=outcome.status.value,
                code=outcome.code,
                detail=result.detail,
                next_attempt_at=outcome.next_attempt_at,
                recorded=recorded,
            )

    def _disabled_notices(self, name: str, reason: str | None) -> tuple[Notice, ...]:
        if reason is None:
            return ()
        text = (
            f"feedwatch disabled the subscriber {name}: {reason}.\n"
            "Its pending deliveries were marked failed. Change its settings in the "
            "configuration, or run `feedwatch deliveries retry --failed`, to enable it again."
        )
        return tuple(
            Notice(s.name, f"subscriber {name} disabled", text)
            for s in self._subscribers.values()
            if s.notices and s.name != name
        )

    async def _send(self, job: DeliveryJob, sub: SubscriberSpec) -> SendResult:
        sender = self._senders.get(sub.channel)
        if sender is None:
            return SendResult(ok=False, detail=f"no sender for channel {sub.channel!r}")
        try:
            return await sender.send(job, sub, now=self._wall_clock())
        except Exception as exc:  # a bug in a sender must not stop the others
            log.critical("sender failed", exc_info=exc, extra={"kv": {"subscriber": sub.name}})
            return SendResult(ok=False, detail=f"internal error: {type(exc).__name__}: {exc}")
