"""Webhook delivery: payload schema, signatures, status classification, the SSRF guard.

Deliveries go to real HTTP receivers on 127.0.0.1 (tests/webhook_receiver.py)
that verify signatures with the ``standardwebhooks`` package. No traffic leaves
127.0.0.0/8: host names are resolved by a fake resolver, never by DNS.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Coroutine, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar

import pytest
from loopback import Exchange, send
from standardwebhooks.webhooks import Webhook
from webhook_receiver import Reply, WebhookReceiver

from feedwatch._model import (
    AlertContent,
    DeliveryJob,
    FetchOptions,
    SendResult,
    Span,
    SubscriberSpec,
    WebhookSettings,
)
from feedwatch.exceptions import ErrorKind, FetchError
from feedwatch.fetch import WEBHOOK_MAX_BODY, Resolver, WebhookClient, WebhookResponse
from feedwatch.webhook import TEST_MESSAGE, WebhookSender, payload, sign

SECRET = "whsec_" + base64.b64encode(b"feedwatch webhook test key 32 b").decode()
UA = "feedwatch-test/1"
#: Loopback allowed, as these tests need; everything else stays forbidden.
LOCAL = FetchOptions(allow_networks=("127.0.0.0/8",))
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def alert(
    alert_id: int = 7,
    rule: str = "outage",
    *,
    title: str = "Gateway outage in Berlin",
    content: str = "The API gateway had an outage this morning.",
    spans: tuple[Span, ...] = (Span("content", 23, 29), Span("title", 8, 14)),
    created_at: datetime = T0,
    query: str = "outage",
) -> AlertContent:
    return AlertContent(
        alert_id=alert_id,
        rule=rule,
        rule_query=query,
        item_id=100 + alert_id,
        title=title,
        content_text=content,
        link=f"https://news.example.org/{alert_id}",
        feed="status",
        feed_title="Status page",
        published=T0 - timedelta(hours=1),
        created_at=created_at,
        spans=spans,
        language="en",
        tags=("ops", "infra", "ops"),
    )


def alert_job(*alerts: AlertContent, message_id: str = "msg_alert_7") -> DeliveryJob:
    return DeliveryJob(
        id=1,
        subscriber="chat",
        kind="alert",
        message_id=message_id,
        attempts=0,
        created_at=T0 + timedelta(seconds=5),
        alerts=alerts or (alert(),),
    )


def subscriber(
    url: str,
    secret: str | None = SECRET,
    *,
    headers: tuple[tuple[str, str], ...] = (),
    timeout: float = 5.0,
) -> SubscriberSpec:
    settings = WebhookSettings(url=url, secret=secret, headers=headers, timeout=timeout)
    return SubscriberSpec(name="chat", channel="webhook", spec_json="{}", webhook=settings)


async def deliver_all(
    job: DeliveryJob,
    sub: SubscriberSpec,
    nows: Sequence[datetime],
    *,
    options: FetchOptions = LOCAL,
    resolver: Resolver | None = None,
) -> list[SendResult]:
    async with WebhookClient(options, resolver=resolver) as client:
        sender = WebhookSender(client, user_agent=UA)
        return [await sender.send(job, sub, now=now) for now in nows]


def deliver(
    job: DeliveryJob,
    sub: SubscriberSpec,
    *,
    now: datetime | None = None,
    options: FetchOptions = LOCAL,
    resolver: Resolver | None = None,
) -> SendResult:
    # The receiver's library accepts timestamps within 5 minutes of its clock.
    nows = [now or datetime.now(UTC)]
    (result,) = run(deliver_all(job, sub, nows, options=options, resolver=resolver))
    return result


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as receiver:
        yield receiver


# --------------------------------------------------------------------------- the contract

EXPECTED_ALERT: dict[str, Any] = {
    "alert": {
        "id": 7,
        "rule": "outage",
        "query": "outage",
        "created_at": "2026-03-01T12:00:00Z",
        "spans": [
            {"field": "title", "start": 8, "end": 14, "text": "outage"},
            {"field": "content", "start": 23, "end": 29, "text": "outage"},
        ],
        "snippet": {"text": "The API gateway had an outage this morning.", "marks": [[23, 29]]},
    },
    "item": {
        "id": 107,
        "title": "Gateway outage in Berlin",
        "link": "https://news.example.org/7",
        "published": "2026-03-01T11:00:00Z",
        "language": "en",
        "tags": ["infra", "ops"],
    },
    "feed": {"name": "status", "title": "Status page"},
}


def test_delivery_verifies_and_follows_the_schema(hook: WebhookReceiver) -> None:
    now = datetime.now(UTC)
    result = deliver(alert_job(), subscriber(hook.url), now=now)
    assert result == SendResult(ok=True, code=200, detail="delivered: HTTP 200 OK")
    (got,) = hook.deliveries
    assert got.verified, got.error
    assert got.webhook_id == "msg_alert_7"
    assert got.headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert got.headers["webhook-signature"].startswith("v1,")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == UA
    assert got.json == {
        "type": "alert.created",
        "version": 1,
        "id": "msg_alert_7",
        "timestamp": "2026-03-01T12:00:05Z",
        "data": {"subscriber": "chat", **EXPECTED_ALERT},
    }
    assert got.body == payload(alert_job(), subscriber(hook.url))
    # Compact, in the documented key order.
    assert got.body == json.dumps(got.json, ensure_ascii=False, separators=(",", ":")).encode()


def test_a_retry_carries_the_same_id_and_body(hook: WebhookReceiver) -> None:
    hook.script(Reply(503), Reply(200))
    first = datetime.now(UTC)
    results = run(
        deliver_all(alert_job(), subscriber(hook.url), [first, first + timedelta(1 / 24 / 60)])
    )
    assert [r.ok for r in results] == [False, True]
    one, two = hook.deliveries
    assert one.webhook_id == two.webhook_id == "msg_alert_7"
    assert one.body == two.body
    assert int(two.headers["webhook-timestamp"]) == int(one.headers["webhook-timestamp"]) + 60
    assert one.verified
    assert two.verified


def test_unsigned_when_there_is_no_secret() -> None:
    with WebhookReceiver(secret=None) as hook:
        result = deliver(alert_job(), subscriber(hook.url, secret=None))
    assert result.ok
    (got,) = hook.deliveries
    assert got.verified is None
    assert "webhook-signature" not in got.headers
    assert got.webhook_id == "msg_alert_7"
    assert got.json["data"]["alert"]["id"] == 7


def test_a_wrong_secret_does_not_verify() -> None:
    other = "whsec_" + base64.b64encode(b"another key, not the receiver's").decode()
    with WebhookReceiver(secret=SECRET) as hook:
        deliver(alert_job(), subscriber(hook.url, secret=other))
    (got,) = hook.deliveries
    assert got.verified is False


def test_extra_headers_are_sent_but_never_replace_feedwatch_ones(hook: WebhookReceiver) -> None:
    extra = (("X-Team", "news"), ("Webhook-Id", "forged"), ("Content-Type", "text/plain"))
    assert deliver(alert_job(), subscriber(hook.url, headers=extra)).ok
    (got,) = hook.deliveries
    assert got.headers["x-team"] == "news"
    assert got.webhook_id == "msg_alert_7"
    assert got.headers["content-type"] == "application/json"
    assert got.verified


def test_cr_lf_and_line_separators_in_text_are_fine_in_json(hook: WebhookReceiver) -> None:
    title = 'Line one\r\nLine two\u2028"quoted"\tand \\ more'
    content = "First\r\n\r\nSecond: outage\n\x00end"
    job = alert_job(alert(title=title, content=content, spans=(Span("content", 17, 23),)))
    assert deliver(job, subscriber(hook.url)).ok
    (got,) = hook.deliveries
    assert got.verified, got.error
    assert b"\r" not in got.body
    assert b"\n" not in got.body
    data = got.json["data"]
    assert data["item"]["title"] == title
    assert data["alert"]["spans"] == [
        {"field": "content", "start": 17, "end": 23, "text": "outage"}
    ]


def test_payload_is_deterministic_and_utf8() -> None:
    sub = subscriber("https://hooks.example.org/x")
    job = alert_job(alert(title="Störung in Köln", spans=()))
    body = payload(job, sub)
    assert body == payload(job, sub)
    assert "Störung in Köln".encode() in body  # raw UTF-8, not \\u escapes
    assert json.loads(body)["data"]["alert"]["snippet"]["marks"] == []


def test_test_payload() -> None:
    job = DeliveryJob(
        id=0,
        subscriber="chat",
        kind="alert",
        message_id="msg_test",
        attempts=0,
        created_at=T0,
        alerts=(),
        test=True,
    )
    assert json.loads(payload(job, subscriber("https://hooks.example.org/x"))) == {
        "type": "test",
        "version": 1,
        "id": "msg_test",
        "timestamp": "2026-03-01T12:00:00Z",
        "data": {"subscriber": "chat", "message": TEST_MESSAGE},
    }


def test_digest_payload_groups_by_rule() -> None:
    alerts = (
        alert(3, "outage", created_at=T0 + timedelta(minutes=30)),
        alert(1, "breach", query="breach OR leak", created_at=T0 + timedelta(minutes=40)),
        alert(2, "outage", created_at=T0 + timedelta(minutes=10)),
    )
    job = DeliveryJob(
        id=9,
        subscriber="chat",
        kind="digest",
        message_id="msg_digest_9",
        attempts=2,
        created_at=T0 + timedelta(hours=1),
        alerts=alerts,
        window_start=T0,
        window_end=T0 + timedelta(hours=1),
    )
    body = json.loads(payload(job, subscriber("https://hooks.example.org/x")))
    assert body["type"] == "digest.created"
    assert body["id"] == "msg_digest_9"
    data = body["data"]
    assert data["subscriber"] == "chat"
    assert data["window"] == {"start": "2026-03-01T12:00:00Z", "end": "2026-03-01T13:00:00Z"}
    assert data["count"] == 3
    assert [(g["rule"], g["query"]) for g in data["rules"]] == [
        ("breach", "breach OR leak"),
        ("outage", "outage"),
    ]
    assert [[a["alert"]["id"] for a in g["alerts"]] for g in data["rules"]] == [[1], [2, 3]]
    first = data["rules"][1]["alerts"][0]
    assert set(first) == {"alert", "item", "feed"}
    assert first["item"] == {
        **EXPECTED_ALERT["item"],
        "id": 102,
        "link": "https://news.example.org/2",
    }


def test_malformed_jobs_are_refused() -> None:
    sub = subscriber("https://hooks.example.org/x")
    with pytest.raises(ValueError, match="2 alerts"):
        payload(alert_job(alert(1), alert(2)), sub)
    digest = DeliveryJob(1, "chat", "digest", "m", 0, T0, (alert(),))
    with pytest.raises(ValueError, match="no window"):
        payload(digest, sub)


def test_sign_matches_the_standard_webhooks_library() -> None:
    body = payload(alert_job(), subscriber("https://hooks.example.org/x"))
    ts = 1_772_366_400
    expected = Webhook(SECRET).sign("msg_1", datetime.fromtimestamp(ts, UTC), body.decode())
    assert sign(SECRET, "msg_1", ts, body) == expected
    unpadded = SECRET.rstrip("=")
    assert sign(unpadded, "msg_1", ts, body) == expected
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not*base64", "msg_1", ts, body)


# --------------------------------------------------------------------------- statuses


def test_410_disables_the_subscriber(hook: WebhookReceiver) -> None:
    hook.script(Reply(410, body=b"hook deleted"))
    result = deliver(alert_job(), subscriber(hook.url))
    assert (result.ok, result.permanent, result.disable, result.code) == (False, True, True, 410)
    assert "410 Gone" in result.detail
    assert "subscriber is disabled" in result.detail
    assert "hook deleted" in result.detail


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retryable(hook: WebhookReceiver, status: int) -> None:
    hook.script(Reply(status, body=b"boom\r\nstack trace"))
    result = deliver(alert_job(), subscriber(hook.url))
    assert (result.ok, result.permanent, result.disable) == (False, False, False)
    assert result.code == status
    assert result.retry_after is None
    assert f"HTTP {status}" in result.detail
    assert "boom stack trace" in result.detail  # one line


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("as_date", [False, True], ids=["seconds", "http-date"])
def test_retry_after_is_reported(hook: WebhookReceiver, status: int, as_date: bool) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    value = format_datetime(now + timedelta(seconds=120), usegmt=True) if as_date else "120"
    hook.script(Reply(status, headers={"Retry-After": value}))
    result = deliver(alert_job(), subscriber(hook.url), now=now)
    assert (result.ok, result.permanent, result.code) == (False, False, status)
    assert result.retry_after == 120.0
    assert "retry after 120s" in result.detail


def test_a_redirect_is_not_followed(hook: WebhookReceiver) -> None:
    with WebhookReceiver(secret=SECRET) as elsewhere:
        hook.script(Reply(302, headers={"Location": elsewhere.url}))
        result = deliver(alert_job(), subscriber(hook.url))
        assert elsewhere.server.requests == []
    assert (result.ok, result.permanent, result.code) == (False, False, 302)
    assert result.detail == f"HTTP 302 Found: redirect to {elsewhere.url} not followed"
    assert len(hook.deliveries) == 1


@pytest.mark.parametrize("status", [400, 401, 404])
def test_other_4xx_is_a_retryable_failure(hook: WebhookReceiver, status: int) -> None:
    hook.script(Reply(status, body=b"no such hook"))
    result = deliver(alert_job(), subscriber(hook.url))
    assert (result.ok, result.permanent, result.disable, result.code) == (
        False,
        False,
        False,
        status,
    )
    assert "no such hook" in result.detail


def test_a_stalled_receiver_times_out(hook: WebhookReceiver) -> None:
    hook.script(Reply(200, stall=30))
    result = deliver(alert_job(), subscriber(hook.url, timeout=0.5))
    assert (result.ok, result.permanent, result.code) == (False, False, None)
    assert "timed out after 0.5s" in result.detail
    assert len(hook.deliveries) == 1


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as sock:  # bound, so nobody else takes the port, but not listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = deliver(alert_job(), subscriber(f"http://127.0.0.1:{port}/hook"))
    assert (result.ok, result.permanent, result.code) == (False, False, None)
    assert "connection refused" in result.detail


def test_only_http_and_https_are_posted(hook: WebhookReceiver) -> None:
    result = deliver(alert_job(), subscriber(hook.url.replace("http:", "ftp:")))
    assert not result.ok
    assert "only http and https" in result.detail
    assert hook.server.requests == []


# --------------------------------------------------------------------------- SSRF guard


def test_the_guard_refuses_loopback_unless_allowed(hook: WebhookReceiver) -> None:
    result = deliver(alert_job(), subscriber(hook.url), options=FetchOptions())
    assert (result.ok, result.permanent, result.code) == (False, False, None)
    assert "blocked" in result.detail
    assert "127.0.0.1 is a loopback address" in result.detail
    assert hook.server.requests == []
    allowed = FetchOptions(allow_networks=("127.0.0.0/8",))
    assert deliver(alert_job(), subscriber(hook.url), options=allowed).ok
    assert len(hook.deliveries) == 1


def test_the_guard_checks_the_resolved_address_of_a_name(hook: WebhookReceiver) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        assert host == "hooks.example.test"
        return ["127.0.0.1"]

    url = f"http://hooks.example.test:{hook.server.port}{hook.PATH}"
    blocked = deliver(alert_job(), subscriber(url), options=FetchOptions(), resolver=resolver)
    assert "hooks.example.test resolves to 127.0.0.1" in blocked.detail
    assert hook.server.requests == []
    assert deliver(alert_job(), subscriber(url), resolver=resolver).ok
    (got,) = hook.deliveries
    assert got.headers["host"] == f"hooks.example.test:{hook.server.port}"
    assert got.verified


# --------------------------------------------------------------------------- WebhookClient


def test_client_reads_at_most_64_kib_and_lower_cases_headers(hook: WebhookReceiver) -> None:
    # Connection: close, so the server does not wait on a socket the client resets
    # (it hangs up with most of the body unread). A 500: the body of a 2xx is not
    # waited for (test_a_2xx_is_returned_without_waiting_for_its_body).
    big = b"x" * (WEBHOOK_MAX_BODY * 3)
    hook.script(Reply(500, headers={"X-Receiver": "Yes", "Connection": "close"}, body=big))

    async def post() -> WebhookResponse:
        async with WebhookClient(LOCAL) as client:
            return await client.post(hook.url, b"{}", {"X-A": "b"}, timeout=5)

    response = run(post())
    assert response.status == 500
    assert response.headers["x-receiver"] == "Yes"
    assert len(response.body) == WEBHOOK_MAX_BODY
    (got,) = hook.deliveries
    assert got.body == b"{}"
    assert got.headers["x-a"] == "b"
    assert got.headers["user-agent"] == LOCAL.user_agent  # the client's default


def test_client_raises_fetch_error_with_a_kind(hook: WebhookReceiver) -> None:
    async def post(url: str, headers: dict[str, str]) -> None:
        async with WebhookClient(FetchOptions()) as client:
            await client.post(url, b"{}", headers, timeout=5)

    with pytest.raises(FetchError) as info:
        run(post(hook.url, {}))
    assert info.value.kind == ErrorKind.BLOCKED
    assert info.value.url == hook.url
    with pytest.raises(FetchError) as info:
        run(post(hook.url, {"X-Bad": "a\r\nInjected: yes"}))
    assert "control characters" in info.value.message
    assert hook.server.requests == []


def drip_200(exchange: Exchange) -> None:
    """Answer 200 at once, then send the declared 1000-byte body a byte a second."""
    exchange.rfile.read(int(exchange.headers.get("Content-Length") or 0))
    exchange.send_response(200)
    exchange.send_header("Content-Length", "1000")
    exchange.end_headers()
    exchange.close_connection = True
    try:
        for _ in range(30):
            exchange.wfile.write(b"o")
            exchange.wfile.flush()
            if exchange.owner.stopping.wait(1.0):
                return
    except OSError:  # the client hung up, as it should
        return


def test_a_2xx_is_returned_without_waiting_for_its_body(hook: WebhookReceiver) -> None:
    # A 2xx received is a delivery. Reading its slow body under the deadline made it
    # a timeout, and the retry a second delivery of the same message.
    hook.server.route(WebhookReceiver.PATH, drip_200)

    async def post() -> WebhookResponse:
        async with WebhookClient(LOCAL) as client:
            return await client.post(hook.url, b"{}", {}, timeout=1)

    response = run(post())
    assert response.status == 200
    assert response.body == b"o" * len(response.body)  # what had arrived, if anything
    assert len(response.body) < 1000
    result = deliver(alert_job(), subscriber(hook.url, timeout=1))
    assert (result.ok, result.code, result.detail) == (True, 200, "delivered: HTTP 200 OK")
    assert len(hook.server.requests_to(WebhookReceiver.PATH)) == 2


def test_a_2xx_without_a_body_keeps_its_connection(hook: WebhookReceiver) -> None:
    # Nothing was left unread, so the connection goes back to the pool.
    peers: list[tuple[str, int]] = []

    def no_content(exchange: Exchange) -> None:
        exchange.rfile.read(int(exchange.headers.get("Content-Length") or 0))
        peers.append(exchange.client_address)
        send(exchange, 204)

    hook.server.route(WebhookReceiver.PATH, no_content)

    async def post_twice() -> list[WebhookResponse]:
        async with WebhookClient(LOCAL) as client:
            return [await client.post(hook.url, b"{}", {}, timeout=5) for _ in range(2)]

    assert [(r.status, r.body) for r in run(post_twice())] == [(204, b""), (204, b"")]
    assert len(peers) == 2
    assert peers[0] == peers[1]
