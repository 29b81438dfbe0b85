"""A Standard Webhooks receiver on a loopback address, for webhook delivery tests.

Usage::

    with WebhookReceiver(secret=SECRET) as hook:          # 127.0.0.1, a free port
        hook.script(Reply(500), Reply(200))               # answers, in order
        ... POST to hook.url ...
        (first, second) = hook.deliveries
        assert first.verified and first.json["type"] == "alert.created"

Every POST to :attr:`WebhookReceiver.PATH` is recorded (webhook-id, lower-case
headers, body) and its signature is checked with the ``standardwebhooks``
package, an implementation independent of ``feedwatch.webhook.sign``:
``verified`` is True or False with a secret, None without one. Replies come
from the script in order, then 200 "ok". A reply may stall first (the client is
expected to give up); the stall ends early when the receiver stops.

Built on :class:`loopback.LoopbackServer` (real sockets, loopback only, and
``server.requests`` lists every request, on any path, so a test can assert that
nothing arrived).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

from loopback import Exchange, LoopbackServer, send
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["Delivery", "Reply", "WebhookReceiver"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    #: e.g. {"Retry-After": "120"} or {"Location": "..."}.
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    #: Seconds to wait before answering (or until the receiver stops).
    stall: float = 0.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One POST as the receiver got it."""

    webhook_id: str | None
    #: Lower-case names.
    headers: dict[str, str]
    body: bytes
    #: The signature checked out (None: the receiver has no secret).
    verified: bool | None
    #: Why verification failed, if it did.
    error: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A webhook endpoint at ``url`` that verifies, records and answers from a script."""

    PATH = "/hook"

    def __init__(
        self, secret: str | None = None, replies: tuple[Reply, ...] = (), host: str = "127.0.0.1"
    ) -> None:
        self.secret = secret
        self.server = LoopbackServer(host)
        self.deliveries: list[Delivery] = []
        self._replies = list(replies)
        self._lock = threading.Lock()
        self.server.route(self.PATH, self._handle)

    @property
    def url(self) -> str:
        return self.server.url(self.PATH)

    def script(self, *replies: Reply) -> None:
        """Answer the next requests with ``replies``, in order (then 200)."""
        with self._lock:
            self._replies.extend(replies)

    def __enter__(self) -> Self:
        self.server.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.__exit__(exc_type, exc, tb)

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[bool | None, str | None]:
        if self.secret is None:
            return None, None
        try:
            Webhook(self.secret).verify(body, headers, json_parse=False)
        except WebhookVerificationError as exc:
            return False, str(exc)
        return True, None

    def _handle(self, exchange: Exchange) -> None:
        length = int(exchange.headers.get("Content-Length") or 0)
        body = exchange.rfile.read(length)
        headers = {name.lower(): value for name, value in exchange.headers.items()}
        verified, error = self._verify(body, headers)
        with self._lock:
            delivery = Delivery(headers.get("webhook-id"), headers, body, verified, error)
            self.deliveries.append(delivery)
            reply = self._replies.pop(0) if self._replies else Reply()
        if reply.stall and self.server.stopping.wait(reply.stall):
            exchange.close_connection = True  # stopping: drop the request unanswered
            return
        send(exchange, reply.status, reply.body, reply.headers)
