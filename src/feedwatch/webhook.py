"""The webhook channel of alert delivery: build, sign and POST one payload per job.

Deliveries follow the Standard Webhooks specification
(https://www.standardwebhooks.com/): each is an HTTP POST of a JSON body with

* ``content-type: application/json`` and feedwatch's ``user-agent``;
* ``webhook-id``: the job's message id. It is the same on every retry of a
  delivery, so receivers use it as their idempotency key;
* ``webhook-timestamp``: the attempt's time, in Unix seconds;
* ``webhook-signature``: ``v1,`` + base64 of HMAC-SHA256 over
  ``"{webhook-id}.{webhook-timestamp}.{body}"``, keyed with the base64-decoded
  subscriber secret (without its ``whsec_`` prefix). Only sent when the
  subscriber has a secret. Any Standard Webhooks library verifies it;
* the subscriber's extra headers (they never replace the ones above).

Payload schema, version 1
-------------------------

The public contract for integrators. Within a version, fields are only ever
added, never renamed, removed or changed in meaning; receivers should ignore
fields they do not know. The body is compact UTF-8 JSON; the same job always
gives the same body, byte for byte, on every retry. Times are ISO 8601 in UTC
with a ``Z`` suffix. Character offsets (``start``, ``end``, ``marks``) count
Unicode code points, not bytes or UTF-16 code units, and ``end`` is exclusive.
A field shown as ``… | null`` is null when unknown::

    {
      "type": "alert.created" | "digest.created" | "notice" | "test",
      "version": 1,
      "id": "<message id: equals the webhook-id header>",
      "timestamp": "<when the delivery was created, e.g. 2026-03-01T12:00:00Z>",
      "data": <one of the objects below, by type>
    }

``notice``, to subscribers with ``notices: true``, when feedwatch disabled a feed
(410 Gone, failing too long) or a subscriber (its webhook answered 410)::

    {"subscriber": "<subscriber name>", "subject": "feed un-news disabled",
     "text": "<what happened, why, and what to do; several lines>"}

``alert.created``, one alert, sent as soon as it is raised::

    {
      "subscriber": "<subscriber name>",
      "alert": {
        "id": <int>,
        "rule": "<rule name>",
        "query": "<the rule's query>",
        "created_at": "<when the alert was raised>",
        "spans": [                       # what the rule matched: by field
                                         # (title, content, author, feed), then offset
          {"field": "title" | "content" | "author" | "feed",
           "start": <int>, "end": <int>,
           "text": "<the matched text>" | null}    # null for "author"
        ],
        "snippet": {                     # a short excerpt of the content around
          "text": "<up to ~160 chars>",  # the first content match (the start of
          "marks": [[<start>, <end>], …] # the content when none), with the
        }                                # matches as offsets into "text"
      },
      "item": {
        "id": <int>,
        "title": "<plain text>",
        "link": "<http(s) URL>" | null,
        "published": "<time>" | null,
        "language": "<language tag>" | null,
        "tags": ["<tag>", …]            # sorted
      },
      "feed": {"name": "<feed name>", "title": "<feed title>" | null}
    }

``digest.created``, the alerts of one digest window, grouped by rule::

    {
      "subscriber": "<subscriber name>",
      "window": {"start": "<time>", "end": "<time>"},
      "count": <number of alerts in all groups>,
      "rules": [                         # sorted by rule name
        {"rule": "<rule name>", "query": "<the rule's query>",
         "alerts": [                     # sorted by created_at, then alert id
           {"alert": {…}, "item": {…}, "feed": {…}}     # as in alert.created
         ]}
      ]
    }

``test``, sent by ``feedwatch subscribers test``; no alert was raised::

    {"subscriber": "<subscriber name>",
     "message": "feedwatch test message: no alert was raised"}

What this module does NOT do: choose which alerts to send or when, retry,
back off, disable subscribers or record outcomes (the delivery loop does, from
the :class:`~feedwatch._model.SendResult`), or touch httpx (``fetch.py``).
:func:`payload` and :func:`sign` are pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http
import json
from datetime import UTC, datetime
from typing import Any

from ._model import AlertContent, DeliveryJob, SendResult, Span, SubscriberSpec
from ._utils import one_line
from .exceptions import ErrorKind, FetchError
from .fetch import WebhookClient, WebhookResponse, parse_retry_after
from .snippet import make_snippet

__all__ = [
    "PROTECTED_HEADERS",
    "SCHEMA_VERSION",
    "TEST_MESSAGE",
    "WebhookSender",
    "payload",
    "sign",
]

#: The version of the payload schema (the module docstring describes it).
SCHEMA_VERSION = 1
#: The ``message`` of a test payload.
TEST_MESSAGE = "feedwatch test message: no alert was raised"
#: Headers feedwatch sets itself; a subscriber's extra headers never replace them.
PROTECTED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "content-length"}
)

_SECRET_PREFIX = "whsec_"
#: Characters of the receiver's answer quoted in a failure's detail.
_EXCERPT = 120
#: Characters of a redirect's Location quoted in a failure's detail.
_LOCATION_EXCERPT = 200
#: Spans are sorted by field in this order, then by offsets.
_FIELD_ORDER = {"title": 0, "content": 1, "author": 2, "feed": 3}


# --------------------------------------------------------------------------- payload


def payload(job: DeliveryJob, sub: SubscriberSpec) -> bytes:
    """The body of the delivery of ``job`` to ``sub``: compact UTF-8 JSON, schema version 1.

    Deterministic: the same job gives the same bytes (the attempt time is not
    in the body, only in the ``webhook-timestamp`` header).

    Raises:
        ValueError: an "alert" job without exactly one alert, a digest without
            its window, or an unknown kind (programming errors).
    """
    if job.test:
        kind, data = "test", {"subscriber": sub.name, "message": TEST_MESSAGE}
    elif job.kind == "alert":
        if len(job.alerts) != 1:
            raise ValueError(f"alert job {job.id} has {len(job.alerts)} alerts, not 1")
        kind, data = "alert.created", {"subscriber": sub.name, **_alert_entry(job.alerts[0])}
    elif job.kind == "digest":
        kind, data = "digest.created", _digest_data(job, sub)
    elif job.kind == "notice":
        kind = "notice"
        data = {"subscriber": sub.name, "subject": job.notice_subject, "text": job.notice_text}
    else:
        raise ValueError(f"job {job.id} has an unknown kind {job.kind!r}")
    document = {
        "type": kind,
        "version": SCHEMA_VERSION,
        "id": job.message_id,
        "timestamp": _iso(job.created_at),
        "data": data,
    }
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    # A lone surrogate (from a broken feed) has no UTF-8 form; "?" keeps the JSON valid.
    return text.encode("utf-8", errors="replace")


def _digest_data(job: DeliveryJob, sub: SubscriberSpec) -> dict[str, Any]:
    if job.window_start is None or job.window_end is None:
        raise ValueError(f"digest job {job.id} has no window")
    groups: dict[str, list[AlertContent]] = {}
    for alert in job.alerts:
        groups.setdefault(alert.rule, []).append(alert)
    rules = []
    for rule in sorted(groups):
        alerts = sorted(groups[rule], key=lambda a: (_utc(a.created_at), a.alert_id))
        rules.append(
            {
                "rule": rule,
                # One rule has one query; the newest alert's is the current one.
                "query": alerts[-1].rule_query,
                "alerts": [_alert_entry(a) for a in alerts],
            }
        )
    return {
        "subscriber": sub.name,
        "window": {"start": _iso(job.window_start), "end": _iso(job.window_end)},
        "count": len(job.alerts),
        "rules": rules,
    }


def _alert_entry(alert: AlertContent) -> dict[str, Any]:
    """The ``alert``, ``item`` and ``feed`` objects of one alert."""
    spans = sorted(set(alert.spans), key=_span_order)
    content = [(s.start, s.end) for s in spans if s.field == "content"]
    snippet = make_snippet(alert.content_text, content)
    return {
        "alert": {
            "id": alert.alert_id,
            "rule": alert.rule,
            "query": alert.rule_query,
            "created_at": _iso(alert.created_at),
            "spans": [_span(alert, s) for s in spans],
            "snippet": {"text": snippet.text, "marks": [list(m) for m in snippet.marks]},
        },
        "item": {
            "id": alert.item_id,
            "title": alert.title,
            "link": alert.link,
            "published": _iso(alert.published) if alert.published is not None else None,
            "language": alert.language,
            "tags": sorted(set(alert.tags)),
        },
        "feed": {"name": alert.feed, "title": alert.feed_title},
    }


def _span_order(span: Span) -> tuple[int, str, int, int]:
    return (_FIELD_ORDER.get(span.field, len(_FIELD_ORDER)), span.field, span.start, span.end)


def _span(alert: AlertContent, span: Span) -> dict[str, Any]:
    source = {"title": alert.title, "content": alert.content_text, "feed": alert.feed}.get(
        span.field
    )
    text = None
    if source is not None and 0 <= span.start <= span.end <= len(source):
        text = source[span.start : span.end]
    return {"field": span.field, "start": span.start, "end": span.end, "text": text}


def _utc(value: datetime) -> datetime:
    # Records hold aware UTC datetimes; a naive one is taken as UTC.
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime) -> str:
    return _utc(value).isoformat().replace("+00:00", "Z")


# --------------------------------------------------------------------------- signature


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one delivery (Standard Webhooks, ``v1``).

    ``secret`` is ``whsec_`` + base64 (padding optional, as other libraries accept).

    Raises:
        ValueError: the secret is not base64 or decodes to nothing.
    """
    encoded = secret.removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("webhook secret is not 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


# --------------------------------------------------------------------------- sender


class WebhookSender:
    """Send delivery jobs to webhook subscribers; one attempt per call, never raising.

    Args:
        client: the guarded HTTP client (shared by all webhook subscribers).
        user_agent: the ``user-agent`` header (a subscriber's extra headers may
            replace it).
    """

    def __init__(self, client: WebhookClient, *, user_agent: str) -> None:
        self._client = client
        self._user_agent = user_agent

    async def send(self, job: DeliveryJob, sub: SubscriberSpec, *, now: datetime) -> SendResult:
        """POST ``job`` to ``sub``'s URL once and say what came of it.

        ``now`` is the attempt's time (``webhook-timestamp``, and the reference
        for a ``Retry-After`` date). HTTP and network trouble is reported in the
        result, never raised:

        ======================  ====  ==========  =====================================
        outcome                 ok    retryable   notes
        ======================  ====  ==========  =====================================
        2xx                     yes   ..
        410 Gone                no    no          ``disable``: the endpoint is gone
        429, 5xx                no    yes         ``retry_after`` from Retry-After
        3xx                     no    yes         the redirect is not followed
        other 4xx, 1xx, >= 600  no    yes         (a 404 is not a success)
        FetchError              no    yes         timeout, blocked address, refused, ...
        no webhook settings     no    no          a configuration bug
        ======================  ====  ==========  =====================================
        """
        settings = sub.webhook
        if settings is None:
            msg = f"subscriber {sub.name!r} has no webhook settings"
            return SendResult(ok=False, permanent=True, detail=msg)
        body = payload(job, sub)
        timestamp = int(now.timestamp())
        headers = {"user-agent": self._user_agent}
        for name, value in settings.headers:
            if name.lower() not in PROTECTED_HEADERS:
                headers[name.lower()] = value
        headers |= {
            "content-type": "application/json",
            "webhook-id": job.message_id,
            "webhook-timestamp": str(timestamp),
        }
        if settings.secret:  # config: an empty secret means unsigned
            try:
                headers["webhook-signature"] = sign(
                    settings.secret, job.message_id, timestamp, body
                )
            except ValueError as exc:
                return SendResult(ok=False, permanent=True, detail=f"not sent: {exc}")
        try:
            response = await self._client.post(
                settings.url, body, headers, timeout=settings.timeout
            )
        except FetchError as exc:
            return _failed(exc)
        return _judge(response, now)


def _failed(exc: FetchError) -> SendResult:
    what = {
        ErrorKind.BLOCKED: "blocked address",
        ErrorKind.TIMEOUT: "timed out",
        ErrorKind.INVALID_URL: "invalid URL",
    }.get(exc.kind, str(exc.kind).replace("_", " "))
    return SendResult(ok=False, detail=f"not delivered ({what}): {exc.message}")


def _judge(response: WebhookResponse, now: datetime) -> SendResult:
    status = response.status
    label = f"HTTP {status} {_phrase(status)}".rstrip()
    if 200 <= status < 300:
        return SendResult(ok=True, code=status, detail=f"delivered: {label}")
    said = _excerpt(response.body)
    if status == 410:
        detail = "the receiver answered 410 Gone: the endpoint is gone; the subscriber is disabled"
        return SendResult(ok=False, permanent=True, disable=True, code=status, detail=detail + said)
    if status == 429 or 500 <= status < 600:
        retry_after = parse_retry_after(response.headers.get("retry-after"), now)
        wait = f", retry after {_wait(retry_after)}" if retry_after is not None else ""
        detail = f"receiver answered {label}{wait}{said}"
        return SendResult(ok=False, retry_after=retry_after, code=status, detail=detail)
    if 300 <= status < 400:
        # The receiver's text, as the answer's: one printable line, cut (httpx reads
        # header bytes as Latin-1, so 0x80-0x9F arrive as C1 controls).
        location = one_line(response.headers.get("location") or "", _LOCATION_EXCERPT)
        where = f"redirect to {location}" if location else "redirect without a Location"
        return SendResult(ok=False, code=status, detail=f"{label}: {where} not followed")
    return SendResult(ok=False, code=status, detail=f"receiver answered {label}{said}")


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _wait(seconds: float) -> str:
    """A Retry-After for the detail: beyond a day (the most honoured) only that,
    not the 1e+20s a receiver may ask for."""
    return f"{seconds:g}s" if seconds <= 86400 else "more than a day"


def _excerpt(body: bytes) -> str:
    """The start of the receiver's answer, on one line, for the detail."""
    text = one_line(body.decode("utf-8", errors="replace"), _EXCERPT)
    return f" (receiver said: {text})" if text else ""
