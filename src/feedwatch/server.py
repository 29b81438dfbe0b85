"""The daemon's HTTP face; the only module importing FastAPI and uvicorn.

Does:
  * build the ASGI app (:func:`create_app`): health and readiness checks, Prometheus
    metrics, a read-only JSON API over the stored feeds, items and alerts (with an
    OpenAPI document at ``/openapi.json`` and docs at ``/docs``), and Atom feeds of
    the latest alerts for feed readers;
  * run it with uvicorn inside the caller's asyncio loop (:class:`HttpServer`).

Does not:
  * write anything: every endpoint reads, through ``fw.storage`` and ``fw.config``;
  * handle signals: the daemon owns SIGTERM/SIGHUP and calls :meth:`HttpServer.stop`;
  * block the loop: endpoints that touch the database are plain functions, which
    Starlette runs in its thread pool, so a slow query never stalls the scheduler.

Endpoints (``token`` set: * needs ``Authorization: Bearer <token>``, ** also takes
``?token=<token>``, since feed readers cannot send headers)::

    GET /healthz                      200 database answers and scheduler heartbeat fresh, else 503
    GET /readyz                       200 started, not shutting down, database answers, else 503
    GET /metrics                      Prometheus text format
    GET /api/v1/feeds             *   feeds with their polling state
    GET /api/v1/items             *   items: feed, rule, since, q, limit (1..500), offset
    GET /api/v1/alerts            *   alerts: rule, since, limit (1..500)
    POST /api/v1/reload           *   re-read the configuration (the daemon only), 422 if invalid
    GET /alerts.atom              **  Atom feed of the latest 100 alerts (?rule=NAME: one rule)
    GET /rules/{name}/alerts.atom **  the same for one rule

Health, readiness and metrics stay open whatever the token, for probes and
scrapers; so do ``/openapi.json`` and ``/docs``. They reveal no stored content,
and health answers say "database unavailable" without the database's address.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import math
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol
from urllib.parse import quote, urlencode, urlsplit

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator

from . import __version__
from ._logging import event, get_logger
from .exceptions import StorageError
from .metrics import Metrics
from .snippet import make_snippet
from .types import FeedStatus, StoredAlert, StoredItem

if TYPE_CHECKING:  # pragma: no cover
    from starlette.types import ASGIApp

    from .core import Feedwatch

__all__ = [
    "ATOM_LIMIT",
    "DaemonState",
    "HttpServer",
    "build_atom",
    "create_app",
    "utcnow",
]

log = get_logger(__name__)

#: Alerts in an Atom feed, newest first.
ATOM_LIMIT = 100
#: Largest page of the JSON API.
MAX_LIMIT = 500
#: Namespace of Atom 1.0 (RFC 4287).
ATOM_NS = "http://www.w3.org/2005/Atom"
#: Tag URI prefix (RFC 4151) of feed and entry ids; never change it, readers key on it.
TAG = "tag:feedwatch,2026"


def utcnow() -> datetime:
    return datetime.now(UTC)


class DaemonState(Protocol):
    """What the HTTP face asks of the running daemon."""

    def heartbeat_age(self) -> float | None:
        """Seconds since the scheduler's last tick; None before the first one."""
        ...

    @property
    def heartbeat_limit(self) -> float:
        """A heartbeat older than this many seconds makes ``/healthz`` fail."""
        ...

    def ready(self) -> bool:
        """True once started, and until shutdown begins."""
        ...


# ---------------------------------------------------------------------- parameters

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def _parse_datetime(value: object) -> datetime:
    """An RFC 3339 date-time with its offset (``2026-03-01T12:00:00Z``), as aware UTC."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "expected an ISO-8601 date-time with a time zone, like 2026-03-01T12:00:00Z"
        )
    text = value.upper().replace(" ", "T")
    if text[17:19] == "60":
        # RFC 3339 allows a leap second; Python's datetime does not.
        text = text[:17] + "59" + text[19:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {exc}") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        # Within a day of year 1 or 9999: the bound is as good as the instant.
        return (
            datetime.min.replace(tzinfo=UTC)
            if parsed.year < 5000
            else datetime.max.replace(tzinfo=UTC)
        )


#: A date-time query parameter: RFC 3339 with an offset, turned into aware UTC.
Since = Annotated[datetime, BeforeValidator(_parse_datetime)]

_SINCE = "{} at or after this time: ISO-8601 with an offset, e.g. 2026-03-01T12:00:00Z."

#: Query parameters naming a feed or a rule.
_FeedName = Annotated[
    str | None, Query(description="Only this feed's items.", min_length=1, max_length=200)
]
_RuleName = Annotated[
    str | None, Query(description="Only this rule's alerts.", min_length=1, max_length=200)
]


# ---------------------------------------------------------------------- response models


class Health(BaseModel):
    """The answer of ``/healthz``."""

    status: Literal["ok", "error"]
    database: Literal["ok", "error"]
    #: Seconds since the scheduler's last tick; None before the first.
    heartbeat_age: float | None
    #: Why the daemon is unhealthy; None when it is healthy.
    reason: str | None = None
    #: Feeds disabled by the polling policy (410 Gone, failing too long): the daemon
    #: is healthy, but these need the operator. Each is "name: reason".
    disabled_feeds: list[str] = []


class ReloadOut(BaseModel):
    """The answer of ``POST /api/v1/reload``."""

    reloaded: bool
    #: What changed, or why the file was refused.
    detail: str


class Readiness(BaseModel):
    """The answer of ``/readyz``."""

    status: Literal["ready", "not_ready"]
    reason: str | None = None


class Problem(BaseModel):
    """An error answer."""

    detail: str


class FeedOut(BaseModel):
    """A feed with its polling state."""

    name: str
    url: str
    title: str | None
    active: bool
    #: "disabled", else the last poll's status ("ok", "not_modified", "error"), or "new".
    state: str
    status: str | None
    last_poll_at: datetime | None
    next_poll_at: datetime | None
    last_success_at: datetime | None
    item_count: int
    consecutive_errors: int
    last_error_kind: str | None
    last_error: str | None
    disabled_at: datetime | None = None
    disabled_reason: str | None = None


class FeedList(BaseModel):
    feeds: list[FeedOut]


class ItemOut(BaseModel):
    """A stored item (plain text; no HTML)."""

    id: int
    feed: str
    entry_key: str
    url: str | None
    title: str
    content_text: str
    author: str | None
    published: datetime | None
    first_seen: datetime
    sort_at: datetime
    tags: list[str]
    language: str | None


class ItemPage(BaseModel):
    items: list[ItemOut]
    limit: int
    offset: int
    #: The ``offset`` of the next page; None on the last one.
    next_offset: int | None


class SpanOut(BaseModel):
    """Where the rule matched: ``text[start:end]`` of the item's title or content."""

    field: str
    start: int
    end: int
    text: str


class SnippetOut(BaseModel):
    """A short cut of the item's text around the first content match."""

    text: str
    #: (start, end) offsets of the matches into ``text``.
    marks: list[tuple[int, int]]


class AlertOut(BaseModel):
    """A rule matched an item."""

    id: int
    rule: str
    feed: str
    item_id: int
    item_title: str
    item_url: str | None
    created_at: datetime
    spans: list[SpanOut]
    snippet: SnippetOut


class AlertList(BaseModel):
    alerts: list[AlertOut]


def _feed_out(feed: FeedStatus) -> FeedOut:
    disabled_at = feed.disabled_at
    status = feed.status
    return FeedOut(
        name=feed.name,
        url=feed.url,
        title=feed.title,
        active=feed.active,
        state="disabled" if disabled_at is not None else (status or "new"),
        status=status,
        last_poll_at=feed.last_poll_at,
        next_poll_at=feed.next_poll_at,
        last_success_at=feed.last_success_at,
        item_count=feed.item_count,
        consecutive_errors=feed.consecutive_errors,
        last_error_kind=feed.last_error_kind,
        last_error=feed.last_error,
        disabled_at=disabled_at,
        disabled_reason=feed.disabled_reason,
    )


def _item_out(item: StoredItem) -> ItemOut:
    return ItemOut(
        id=item.id,
        feed=item.feed,
        entry_key=item.entry_key,
        url=item.url,
        title=item.title,
        content_text=item.content_text,
        author=item.author,
        published=item.published,
        first_seen=item.first_seen,
        sort_at=item.sort_at,
        tags=list(item.tags),
        language=item.language,
    )


def _alert_snippet(alert: StoredAlert) -> SnippetOut:
    content = [(s.start, s.end) for s in alert.spans if s.field == "content"]
    snippet = make_snippet(alert.item_text, content)
    return SnippetOut(text=snippet.text, marks=list(snippet.marks))


def _alert_out(alert: StoredAlert) -> AlertOut:
    spans = [
        SpanOut(
            field=s.field,
            start=s.start,
            end=s.end,
            text=(alert.item_title if s.field == "title" else alert.item_text)[s.start : s.end],
        )
        for s in alert.spans
    ]
    return AlertOut(
        id=alert.id,
        rule=alert.rule,
        feed=alert.feed,
        item_id=alert.item_id,
        item_title=alert.item_title,
        item_url=alert.item_url,
        created_at=alert.created_at,
        spans=spans,
        snippet=_alert_snippet(alert),
    )


# ---------------------------------------------------------------------- Atom

# Characters XML 1.0 forbids even escaped (C0 controls but tab/LF/CR, surrogates, FFFE/FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_text(value: str) -> str:
    """``value`` without the characters XML cannot carry; ElementTree escapes the rest."""
    return _NOT_XML.sub("", value)


def _atom_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _web_link(url: str | None) -> str | None:
    """``url`` if it is an absolute http(s) URL with a host; None otherwise."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    clean = _xml_text(url)
    return clean if clean == url and not any(c.isspace() for c in url) else None


def build_atom(
    alerts: Sequence[StoredAlert],
    *,
    feed_id: str,
    title: str,
    self_url: str,
    now: datetime,
) -> bytes:
    """An Atom 1.0 document (RFC 4287) of ``alerts``, in the order given.

    Each entry: id ``tag:feedwatch,2026:alert:<id>`` (stable), title ``[rule] item
    title``, the item's link if it is http(s), the alert's time as ``updated``, the
    feed's name as author, the rule as category and the snippet as a text summary.
    An entry without a usable link carries the snippet as content too (RFC 4287
    §4.1.1.1 wants one or the other). Every string is text, escaped by ElementTree;
    none is markup. ``updated`` of the feed is the newest alert's time (``now`` if
    there is none).
    """
    root = ET.Element("feed", {"xmlns": ATOM_NS})
    ET.SubElement(root, "id").text = feed_id
    ET.SubElement(root, "title").text = _xml_text(title)
    newest = max((a.created_at for a in alerts), default=now)
    ET.SubElement(root, "updated").text = _atom_time(newest)
    ET.SubElement(
        root, "link", {"rel": "self", "type": "application/atom+xml", "href": _xml_text(self_url)}
    )
    ET.SubElement(root, "generator", {"version": __version__}).text = "feedwatch"
    # Entries name their own author; this one makes even an empty feed valid.
    ET.SubElement(ET.SubElement(root, "author"), "name").text = "feedwatch"
    for alert in alerts:
        entry = ET.SubElement(root, "entry")
        ET.SubElement(entry, "id").text = f"{TAG}:alert:{alert.id}"
        ET.SubElement(entry, "title").text = _xml_text(f"[{alert.rule}] {alert.item_title}")
        link = _web_link(alert.item_url)
        if link is not None:
            ET.SubElement(entry, "link", {"rel": "alternate", "href": link})
        ET.SubElement(entry, "updated").text = _atom_time(alert.created_at)
        author = ET.SubElement(entry, "author")
        ET.SubElement(author, "name").text = _xml_text(alert.feed)
        ET.SubElement(entry, "category", {"term": _xml_text(alert.rule)})
        summary = _xml_text(_alert_snippet(alert).text)
        ET.SubElement(entry, "summary", {"type": "text"}).text = summary
        if link is None:
            ET.SubElement(entry, "content", {"type": "text"}).text = summary
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


class AtomResponse(Response):
    media_type = "application/atom+xml"


# ---------------------------------------------------------------------- the app

_Responses = dict[int | str, dict[str, Any]]


def _problem(description: str) -> dict[str, Any]:
    """An error answer for ``responses=``: always JSON, whatever the route's own type
    (FastAPI would document a ``model`` under the Atom routes' media type)."""
    schema = Problem.model_json_schema()
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_UNAUTHORIZED: _Responses = {401: _problem("Missing or wrong token.")}
_UNAVAILABLE: _Responses = {503: _problem("The database is unavailable.")}


def _same_token(given: bytes | None, token: str) -> bool:
    # Bytes: compare_digest on str accepts ASCII only.
    return given is not None and hmac.compare_digest(given, token.encode())


def _header_bytes(credentials: HTTPAuthorizationCredentials | None) -> bytes | None:
    """The bearer token as sent: Starlette decodes headers as Latin-1, so this undoes it
    (a UTF-8 token in the header then compares equal to the configured one)."""
    return credentials.credentials.encode("latin-1") if credentials is not None else None


def _unauthorized(given: bool) -> HTTPException:
    challenge = 'Bearer realm="feedwatch"'
    if given:
        challenge += ', error="invalid_token"'
    return HTTPException(401, "missing or wrong token", headers={"WWW-Authenticate": challenge})


#: How the token is given. Module-level so that the dependencies' annotations resolve
#: (this module has postponed annotations); they hold no token.
_BEARER = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="`Authorization: Bearer <token>`"
)
_QUERY_TOKEN = APIKeyQuery(
    name="token",
    auto_error=False,
    scheme_name="token_query",
    description="`?token=<token>`, for feed readers that cannot send headers (Atom only).",
)


def _token_dependencies(token: str | None) -> tuple[list[Any], list[Any]]:
    """Dependencies of the API routes and of the Atom routes: none when ``token`` is None.

    Declared through FastAPI's security classes so that the OpenAPI document says
    how to authenticate; with no token the document declares no security at all.
    """
    if token is None:
        return [], []

    def header_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        given = _header_bytes(credentials)
        if not _same_token(given, token):
            raise _unauthorized(given is not None)

    def header_or_query_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        query: Annotated[str | None, Depends(_QUERY_TOKEN)],
    ) -> None:
        given = _header_bytes(credentials)
        in_url = query.encode() if query is not None else None
        if not (_same_token(given, token) or _same_token(in_url, token)):
            raise _unauthorized(given is not None or in_url is not None)

    return [Depends(header_token)], [Depends(header_or_query_token)]


def create_app(
    fw: Feedwatch,
    state: DaemonState,
    metrics: Metrics,
    *,
    token: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    reload: Callable[[], Awaitable[tuple[bool, str]]] | None = None,
) -> FastAPI:
    """The daemon's ASGI app over ``fw`` (see the module docstring for the endpoints).

    ``token`` (if set, non-empty) guards the API and the Atom feeds; ``clock`` is
    the time used for metrics ages and empty Atom feeds. ``reload``, when given,
    backs ``POST /api/v1/reload`` (``feedwatch reload``): it re-reads the
    configuration and says whether it was taken, and why not.
    """
    if token is not None and not token:
        raise ValueError("token must not be empty (use None for no token)")
    app = FastAPI(
        title="feedwatch",
        version=__version__,
        description=(
            "Read-only API of the feedwatch daemon. When a token is configured, "
            "`/api/*` needs `Authorization: Bearer <token>`, and the Atom feeds take it "
            "as that header or as `?token=`. `/healthz`, `/readyz`, `/metrics`, "
            "`/openapi.json` and `/docs` are always open. Times are ISO-8601 in UTC."
        ),
        redoc_url=None,
    )
    api_auth, atom_auth = _token_dependencies(token)
    guarded: _Responses = _UNAUTHORIZED if token is not None else {}

    @app.exception_handler(StorageError)
    async def _storage_failed(request: Request, exc: StorageError) -> JSONResponse:
        event(log, logging.ERROR, "http_storage_failed", path=request.url.path, error=str(exc))
        return JSONResponse({"detail": "database unavailable"}, status_code=503)

    @app.middleware("http")
    async def _access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        # The path only: a query string may carry the token.
        event(
            log,
            logging.DEBUG,
            "http_request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
        )
        return response

    # ------------------------------------------------------------------ probes

    def database_problem() -> str | None:
        try:
            fw.storage.ping()
        except StorageError as exc:
            event(log, logging.WARNING, "health_database_failed", error=str(exc))
            return "database unavailable"
        return None

    @app.get(
        "/healthz",
        response_model=Health,
        responses={503: {"model": Health, "description": "Unhealthy; `reason` says why."}},
        tags=["probes"],
    )
    def healthz() -> Any:
        """Liveness: the database answers and the scheduler ticked recently."""
        reasons: list[str] = []
        db_problem = database_problem()
        if db_problem is not None:
            reasons.append(db_problem)
        age = state.heartbeat_age()
        if age is not None and not math.isfinite(age):
            age = None
        limit = state.heartbeat_limit
        if age is None:
            reasons.append("the scheduler has not ticked yet")
        elif age > limit:
            reasons.append(f"the scheduler's last tick was {age:.1f} s ago (limit {limit:g} s)")
        disabled: list[str] = []
        if db_problem is None:
            with contextlib.suppress(StorageError):
                disabled = [f"{name}: {reason}" for name, reason in fw.storage.disabled_feeds()]
        health = Health(
            status="error" if reasons else "ok",
            database="error" if db_problem else "ok",
            heartbeat_age=age,
            reason="; ".join(reasons) or None,
            disabled_feeds=disabled,
        )
        if reasons:
            return JSONResponse(health.model_dump(), status_code=503)
        return health

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not ready; `reason` says why."}},
        tags=["probes"],
    )
    def readyz() -> Any:
        """Readiness: started, not shutting down, and the database answers."""
        reason = "starting or shutting down" if not state.ready() else database_problem()
        if reason is not None:
            body = Readiness(status="not_ready", reason=reason)
            return JSONResponse(body.model_dump(), status_code=503)
        return Readiness(status="ready")

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
        tags=["probes"],
    )
    def prometheus_metrics() -> Response:
        """Prometheus metrics in the text exposition format."""
        body, content_type = metrics.render(fw.storage, clock())
        return Response(body, media_type=content_type)

    # ------------------------------------------------------------------ JSON API

    api = APIRouter(
        prefix="/api/v1",
        dependencies=api_auth,
        responses={**guarded, **_UNAVAILABLE},
        tags=["api"],
    )

    @api.get("/feeds", response_model=FeedList)
    def list_feeds(
        include_inactive: Annotated[
            bool, Query(description="Also list feeds no longer in the configuration.")
        ] = False,
    ) -> FeedList:
        """Every configured feed with its polling state, by name."""
        feeds = fw.storage.list_feeds(include_inactive)
        return FeedList(feeds=[_feed_out(f) for f in feeds])

    @api.get("/items", response_model=ItemPage)
    def list_items(
        feed: _FeedName = None,
        rule: Annotated[
            str | None,
            Query(description="Only items this rule alerted on.", min_length=1, max_length=200),
        ] = None,
        since: Annotated[
            Since | None, Query(description=_SINCE.format("Only items dated (sort_at)"))
        ] = None,
        q: Annotated[
            str | None,
            Query(
                description="Case-insensitive text to find in the title or content.",
                max_length=200,
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
    ) -> ItemPage:
        """Stored items, newest first (by publication, else first-seen time)."""
        found = fw.storage.search_items(
            feed=feed, rule=rule, since=since, q=q, limit=limit + 1, offset=offset
        )
        return ItemPage(
            items=[_item_out(i) for i in found[:limit]],
            limit=limit,
            offset=offset,
            next_offset=offset + limit if len(found) > limit else None,
        )

    @api.get("/alerts", response_model=AlertList)
    def list_alerts(
        rule: _RuleName = None,
        since: Annotated[
            Since | None, Query(description=_SINCE.format("Only alerts raised"))
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    ) -> AlertList:
        """Alerts, newest first, with where the rule matched and a snippet."""
        alerts = fw.storage.list_alerts(rule, since, limit)
        return AlertList(alerts=[_alert_out(a) for a in alerts])

    if reload is not None:
        do_reload = reload

        @api.post(
            "/reload",
            response_model=ReloadOut,
            responses={422: {"model": ReloadOut, "description": "Refused: invalid configuration"}},
        )
        async def reload_configuration() -> Any:
            """Re-read the configuration file (like SIGHUP); an invalid one is refused and
            the running configuration kept."""
            ok, detail = await do_reload()
            answer = ReloadOut(reloaded=ok, detail=detail)
            if not ok:
                return JSONResponse(answer.model_dump(), status_code=422)
            return answer

    app.include_router(api)

    # ------------------------------------------------------------------ Atom

    def atom(rule: str | None, self_url: str) -> Response:
        if rule is not None and rule not in {r.name for r in fw.config.rules}:
            raise HTTPException(404, f"no rule named {rule!r}")
        alerts = fw.storage.list_alerts(rule, None, ATOM_LIMIT)
        body = build_atom(
            alerts,
            feed_id=f"{TAG}:alerts" + (f":rule:{quote(rule, safe='')}" if rule else ""),
            title=f"feedwatch alerts: {rule}" if rule else "feedwatch alerts",
            self_url=self_url,
            now=clock(),
        )
        return AtomResponse(body)

    atom_responses: _Responses = {
        200: {
            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
            "description": "An Atom 1.0 feed of the latest alerts.",
        },
        404: _problem("No rule of that name is configured."),
        **guarded,
        **_UNAVAILABLE,
    }

    @app.get(
        "/alerts.atom",
        response_class=AtomResponse,
        responses=atom_responses,
        dependencies=atom_auth,
        tags=["feeds"],
    )
    def alerts_atom(
        request: Request,
        rule: _RuleName = None,
    ) -> Response:
        """Atom feed of the latest alerts (at most 100), of every rule or of one."""
        # The self link never carries the token.
        query = urlencode({"rule": rule}) if rule is not None else ""
        return atom(rule, str(request.url.replace(query=query)))

    @app.get(
        "/rules/{name}/alerts.atom",
        response_class=AtomResponse,
        responses=atom_responses,
        dependencies=atom_auth,
        tags=["feeds"],
    )
    def rule_alerts_atom(
        request: Request,
        name: Annotated[str, Path(description="A configured rule's name.", max_length=200)],
    ) -> Response:
        """Atom feed of one rule's latest alerts (at most 100)."""
        return atom(name, str(request.url.replace(query="")))

    return app


# ---------------------------------------------------------------------- server


class _Server(uvicorn.Server):
    """uvicorn's server minus its signal handling, plus an event set once it listens."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The daemon handles SIGTERM/SIGHUP itself and calls HttpServer.stop().
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()


def _bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port), not yet listening; OSError if that fails."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """Serves an ASGI app with uvicorn in the running asyncio loop (no thread).

    Binds the socket itself, so a bind error is an ``OSError`` from :meth:`start`
    and port 0 works (:attr:`port` is the bound port once started). Installs no
    signal handlers. uvicorn's access log is off (the app logs each request at
    debug level through ``feedwatch.server``, without query strings) and uvicorn
    configures no logging.
    """

    def __init__(
        self,
        asgi_app: ASGIApp,
        host: str,
        port: int,
        *,
        graceful_timeout: int = 5,
    ) -> None:
        self.host = host
        #: The port asked for; the bound one after :meth:`start`.
        self.port = port
        self._app = asgi_app
        self._graceful_timeout = graceful_timeout
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen and serve; returns once the socket accepts connections.

        Raises:
            OSError: the address cannot be bound (in use, not local, ...).
            RuntimeError: already started, or uvicorn failed to start.
        """
        if self._task is not None:
            raise RuntimeError("HttpServer already started")
        sock = _bind(self.host, self.port)
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
            proxy_headers=False,
            ws="none",
            timeout_graceful_shutdown=self._graceful_timeout,
        )
        server = _Server(config)
        self._server = server
        task = asyncio.create_task(self._serve(server, sock), name="feedwatch-http")
        self._task = task
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if not server.listening.is_set():
            listening.cancel()
            sock.close()
            await task  # raises what stopped it
            raise RuntimeError("the HTTP server stopped before it listened")
        self.port = int(sock.getsockname()[1])
        event(log, logging.INFO, "http_listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (up to the graceful timeout)."""
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await task
        finally:
            self._server = self._task = None
        event(log, logging.INFO, "http_stopped", host=self.host, port=self.port)

    @staticmethod
    async def _serve(server: _Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:
            # uvicorn exits the process when it cannot start; here that is an error.
            raise RuntimeError(f"the HTTP server failed to start (exit {exc.code})") from None
