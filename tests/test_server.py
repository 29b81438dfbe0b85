"""The daemon's HTTP face: probes, metrics, the JSON API, Atom feeds, the token, the server.

A real Feedwatch over a SQLite file holding ``test_storage_api.populate``'s data,
a fake daemon state, and the app called through ``httpx.ASGITransport`` (one test
goes through a real :class:`HttpServer` on 127.0.0.1). The clock is fixed.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from test_storage_api import HOUR, T0, populate

from feedwatch._model import FeedUpdateIntent, PollStatus
from feedwatch.config import parse_config
from feedwatch.core import Feedwatch, make_app
from feedwatch.dispatch import DispatchResult
from feedwatch.metrics import Metrics
from feedwatch.server import HttpServer, build_atom, create_app
from feedwatch.storage.sql import open_storage
from feedwatch.types import PollResult, StoredAlert

NOW = T0 + 3 * HOUR
TOKEN = "s3cret-tøken"
BASE = "http://feedwatch.test"

CONFIG = """
feeds:
  - {name: un-news, url: "https://news.example.org/feed.xml", title: UN News}
  - {name: osce, url: "https://osce.example.org/rss"}
rules:
  - {name: sanctions, query: "sanctions OR санкции"}
  - {name: ai, query: AI}
"""


@dataclass
class FakeState:
    """A daemon whose scheduler ticked ``age`` seconds ago (None: not yet)."""

    age: float | None = 2.0
    heartbeat_limit: float = 30.0
    is_ready: bool = True

    def heartbeat_age(self) -> float | None:
        return self.age

    def ready(self) -> bool:
        return self.is_ready


@pytest.fixture
def db_dir(tmp_path: Path) -> Path:
    path = tmp_path / "db"
    path.mkdir()
    return path


@pytest.fixture
def fw(db_dir: Path) -> Iterator[Feedwatch]:
    url = f"sqlite:///{db_dir / 'feedwatch.db'}"
    storage = open_storage(url)
    storage.migrate()
    populate(storage)
    app = make_app(parse_config(CONFIG, database_override=url), storage=storage, clock=lambda: NOW)
    yield app
    app.close()


@pytest.fixture
def state() -> FakeState:
    return FakeState()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def app(fw: Feedwatch, state: FakeState, metrics: Metrics) -> FastAPI:
    return create_app(fw, state, metrics, clock=lambda: NOW)


@pytest.fixture
def guarded(fw: Feedwatch, state: FakeState, metrics: Metrics) -> FastAPI:
    return create_app(fw, state, metrics, token=TOKEN, clock=lambda: NOW)


def call(app: FastAPI, path: str, **kw: Any) -> httpx.Response:
    """GET ``path`` from ``app`` in process."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            return await client.get(path, **kw)

    return asyncio.run(go())


def bearer(token: str) -> dict[str, bytes]:
    """The header, UTF-8 encoded (TOKEN is not ASCII)."""
    return {"Authorization": f"Bearer {token}".encode()}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text page, keyed by (name, labels)."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    page: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return page[(name, frozenset(labels.items()))]


# ---------------------------------------------------------------------- probes


def test_healthz_ok_when_the_database_answers_and_the_heartbeat_is_fresh(app: FastAPI) -> None:
    response = call(app, "/healthz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "heartbeat_age": 2.0,
        "reason": None,
        "disabled_feeds": [],
    }


def test_healthz_names_the_feeds_the_policy_disabled(app: FastAPI, fw: Feedwatch) -> None:
    feed = fw.storage.feeds_for_poll()[0]
    fw.storage.commit_feed(
        FeedUpdateIntent(
            feed_id=feed.id,
            lease_token=None,
            polled_at=T0,
            status=PollStatus.ERROR,
            next_poll_at=T0 + HOUR,
            error_message="HTTP 410 Gone",
            disable_reason="gone: HTTP 410 Gone; the feed was disabled",
        )
    )

    response = call(app, "/healthz")

    assert response.status_code == 200  # the daemon is fine; the feed needs the operator
    assert response.json()["disabled_feeds"] == [
        f"{feed.name}: gone: HTTP 410 Gone; the feed was disabled"
    ]
    assert feed.name not in {f.name for f in fw.storage.feeds_for_poll()}


def test_healthz_503_when_the_heartbeat_is_stale(app: FastAPI, state: FakeState) -> None:
    state.age = 31.0

    response = call(app, "/healthz")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"], body["heartbeat_age"]) == ("error", "ok", 31.0)
    assert "last tick was 31.0 s ago (limit 30 s)" in body["reason"]


def test_healthz_503_before_the_first_tick(app: FastAPI, state: FakeState) -> None:
    state.age = None

    response = call(app, "/healthz")

    assert response.status_code == 503
    assert response.json()["reason"] == "the scheduler has not ticked yet"


def test_probes_api_and_metrics_when_the_database_is_gone(
    app: FastAPI, fw: Feedwatch, db_dir: Path
) -> None:
    fw.storage.close()
    shutil.rmtree(db_dir)

    health = call(app, "/healthz")
    ready = call(app, "/readyz")
    api = call(app, "/api/v1/feeds")
    scrape = call(app, "/metrics")

    assert health.status_code == 503
    assert health.json()["database"] == "error"
    # No path or host of the database on an open endpoint.
    assert health.json()["reason"] == "database unavailable"
    assert str(db_dir) not in health.text
    assert (ready.status_code, ready.json()["reason"]) == (503, "database unavailable")
    assert (api.status_code, api.json()) == (503, {"detail": "database unavailable"})
    assert scrape.status_code == 200
    assert value(samples(scrape.text), "feedwatch_database_up") == 0


def test_readyz(app: FastAPI, state: FakeState) -> None:
    ready = call(app, "/readyz")
    state.is_ready = False
    not_ready = call(app, "/readyz")

    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "reason": None})
    assert not_ready.status_code == 503
    assert not_ready.json() == {"status": "not_ready", "reason": "starting or shutting down"}


# ---------------------------------------------------------------------- metrics


def test_metrics_count_polls_deliveries_and_read_state_from_storage(
    app: FastAPI, metrics: Metrics
) -> None:
    for result in [
        PollResult("un-news", "u", "ok", new=4, updated=1, alerts=3, elapsed=0.02),
        PollResult("osce", "o", "ok", new=1, alerts=1, elapsed=1.5),
        PollResult("osce", "o", "not_modified", elapsed=0.005),
        PollResult("x", "x", "error", error_kind="timeout", elapsed=30.0),
        PollResult("y", "y", "rate_limited", error_kind="http_status", elapsed=0.2),
    ]:
        metrics.observe_poll(result)
    for status in ["sent", "sent", "pending", "failed"]:
        metrics.observe_delivery(DispatchResult(1, "chat", "alert", 1, status, 200, "", None))
    metrics.observe_delivery(DispatchResult(2, "desk", "digest", 3, "sent", 250, "", None))
    metrics.set_scheduler_lag(0.25)
    metrics.heartbeat(1_780_000_000.0)

    response = call(app, "/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    page = samples(response.text)
    assert value(page, "feedwatch_polls_total", outcome="ok") == 2
    assert value(page, "feedwatch_polls_total", outcome="not_modified") == 1
    assert value(page, "feedwatch_polls_total", outcome="error") == 1
    assert value(page, "feedwatch_polls_total", outcome="rate_limited") == 1
    assert value(page, "feedwatch_fetch_seconds_count") == 5
    assert value(page, "feedwatch_fetch_seconds_bucket", le="0.01") == 1
    assert value(page, "feedwatch_fetch_seconds_bucket", le="2.5") == 4
    assert value(page, "feedwatch_fetch_seconds_bucket", le="60.0") == 5
    assert value(page, "feedwatch_items_new_total") == 5
    assert value(page, "feedwatch_items_updated_total") == 1
    assert value(page, "feedwatch_alerts_total") == 4
    assert value(page, "feedwatch_feed_errors_total", kind="timeout") == 1
    assert value(page, "feedwatch_feed_errors_total", kind="http_status") == 1
    assert value(page, "feedwatch_feed_errors_total", kind="parse") == 0
    assert value(page, "feedwatch_deliveries_total", kind="alert", outcome="sent") == 2
    assert value(page, "feedwatch_deliveries_total", kind="alert", outcome="pending") == 1
    assert value(page, "feedwatch_deliveries_total", kind="alert", outcome="failed") == 1
    assert value(page, "feedwatch_deliveries_total", kind="digest", outcome="sent") == 1
    assert value(page, "feedwatch_scheduler_lag_seconds") == 0.25
    assert value(page, "feedwatch_scheduler_heartbeat_timestamp_seconds") == 1_780_000_000.0
    # From storage at scrape time: both feeds were polled ok; four deliveries wait,
    # the oldest since T0 (the clock says T0 + 3h).
    assert value(page, "feedwatch_feeds", state="ok") == 2
    assert value(page, "feedwatch_feeds", state="new") == 0
    assert value(page, "feedwatch_deliveries_pending") == 4
    assert value(page, "feedwatch_delivery_oldest_pending_age_seconds") == 3 * 3600
    assert value(page, "feedwatch_database_up") == 1


@dataclass
class _DisabledFeed:
    """A FeedStatus as the daemon will have it (with ``disabled_at``)."""

    status: str | None
    disabled_at: datetime | None = None


class _StubStorage:
    def __init__(self, feeds: list[Any]) -> None:
        self.feeds = feeds

    def list_feeds(self, include_inactive: bool = False) -> list[Any]:
        return self.feeds

    def delivery_stats(self, now: datetime) -> tuple[int, float | None]:
        return 0, None


def test_metrics_feed_states_disabled_new_and_gone() -> None:
    metrics = Metrics()
    first = _StubStorage(
        [
            _DisabledFeed("error", disabled_at=T0),
            _DisabledFeed("error"),
            _DisabledFeed(None),
            _DisabledFeed("odd"),
        ]
    )
    second = _StubStorage([_DisabledFeed("ok")])

    page1 = samples(metrics.render(first, NOW)[0].decode())  # type: ignore[arg-type]
    page2 = samples(metrics.render(second, NOW)[0].decode())  # type: ignore[arg-type]

    assert [value(page1, "feedwatch_feeds", state=s) for s in ("disabled", "error", "new")] == [
        1,
        1,
        1,
    ]
    assert value(page1, "feedwatch_feeds", state="odd") == 1
    assert value(page1, "feedwatch_delivery_oldest_pending_age_seconds") == 0
    # A state no feed is in any more is dropped; the usual ones stay at 0.
    assert ("feedwatch_feeds", frozenset({("state", "odd")})) not in page2
    assert value(page2, "feedwatch_feeds", state="disabled") == 0
    assert value(page2, "feedwatch_feeds", state="ok") == 1


def test_two_metrics_objects_do_not_share_counts() -> None:
    one, two = Metrics(), Metrics()
    one.observe_poll(PollResult("a", "a", "ok"))

    stub = _StubStorage([])
    page_one = samples(one.render(stub, NOW)[0].decode())  # type: ignore[arg-type]
    page_two = samples(two.render(stub, NOW)[0].decode())  # type: ignore[arg-type]

    assert value(page_one, "feedwatch_polls_total", outcome="ok") == 1
    assert value(page_two, "feedwatch_polls_total", outcome="ok") == 0


# ---------------------------------------------------------------------- JSON API


def test_feeds(app: FastAPI) -> None:
    response = call(app, "/api/v1/feeds")

    assert response.status_code == 200
    feeds = response.json()["feeds"]
    assert [f["name"] for f in feeds] == ["osce", "un-news"]
    un = feeds[1]
    assert (un["title"], un["state"], un["status"], un["item_count"]) == ("UN News", "ok", "ok", 4)
    assert un["last_poll_at"] == "2026-03-01T12:00:00Z"
    assert un["disabled_at"] is None


def test_feeds_include_inactive(app: FastAPI, fw: Feedwatch) -> None:
    fw.storage.sync_config(fw.config.feeds[:1], fw.config.rules, [], NOW)

    active = call(app, "/api/v1/feeds").json()["feeds"]
    every = call(app, "/api/v1/feeds", params={"include_inactive": "true"}).json()["feeds"]

    assert [f["name"] for f in active] == ["un-news"]
    assert [(f["name"], f["active"]) for f in every] == [("osce", False), ("un-news", True)]


def items(app: FastAPI, **params: Any) -> list[str]:
    response = call(app, "/api/v1/items", params=params)
    assert response.status_code == 200, response.text
    return [i["entry_key"] for i in response.json()["items"]]


def test_items_newest_first_with_every_filter(app: FastAPI) -> None:
    assert items(app) == ["o1", "k4", "k3", "k2", "k1"]
    assert items(app, feed="osce") == ["o1"]
    assert items(app, rule="ai") == ["k3", "k2"]
    assert items(app, since="2026-03-01T11:00:00Z") == ["o1", "k4", "k3"]
    # The same instant written with another offset.
    assert items(app, since="2026-03-01T14:00:00+03:00") == ["o1", "k4", "k3"]
    assert items(app, q="САНКЦИИ") == ["o1"]
    assert items(app, q="storms", rule="ai", feed="un-news") == ["k3"]
    assert items(app, feed="nowhere") == []


def test_items_record_and_paging(app: FastAPI) -> None:
    first = call(app, "/api/v1/items", params={"limit": 2}).json()
    last = call(app, "/api/v1/items", params={"limit": 2, "offset": 4}).json()

    assert [i["entry_key"] for i in first["items"]] == ["o1", "k4"]
    assert (first["limit"], first["offset"], first["next_offset"]) == (2, 0, 2)
    assert [i["entry_key"] for i in last["items"]] == ["k1"]
    assert last["next_offset"] is None
    o1 = first["items"][0]
    assert o1["feed"] == "osce"
    assert o1["title"] == "САНКЦИИ против сети"
    assert o1["sort_at"] == "2026-03-01T12:30:00Z"
    assert o1["first_seen"] == "2026-03-01T13:00:00Z"
    assert o1["tags"] == ["un"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/items", {"since": "yesterday"}),
        ("/api/v1/items", {"since": "2026-03-01"}),
        ("/api/v1/items", {"since": "2026-03-01T12:00:00"}),  # no time zone
        ("/api/v1/items", {"since": "2026-02-30T12:00:00Z"}),
        ("/api/v1/items", {"since": "1780000000"}),
        ("/api/v1/items", {"limit": "0"}),
        ("/api/v1/items", {"limit": "501"}),
        ("/api/v1/items", {"limit": "ten"}),
        ("/api/v1/items", {"offset": "-1"}),
        ("/api/v1/items", {"q": "x" * 201}),
        ("/api/v1/alerts", {"since": "not a date"}),
        ("/api/v1/alerts", {"limit": "1000"}),
        ("/api/v1/alerts", {"rule": ""}),
    ],
)
def test_bad_parameters_are_422(app: FastAPI, path: str, params: dict[str, str]) -> None:
    response = call(app, path, params=params)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][:1] == ["query"]


def alerts(app: FastAPI, **params: Any) -> list[dict[str, Any]]:
    response = call(app, "/api/v1/alerts", params=params)
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["alerts"]
    return result


def test_alerts_with_every_filter(app: FastAPI) -> None:
    every = alerts(app)

    # osce's alert was raised an hour after un-news's three (these by id, newest first).
    assert [(a["rule"], a["feed"]) for a in every] == [
        ("sanctions", "osce"),
        ("ai", "un-news"),
        ("ai", "un-news"),
        ("sanctions", "un-news"),
    ]
    assert [a["item_title"] for a in alerts(app, rule="sanctions")] == [
        "САНКЦИИ против сети",
        "Sanctions on shipping",
    ]
    assert [a["feed"] for a in alerts(app, since="2026-03-01T12:30:00Z")] == ["osce"]
    assert len(alerts(app, limit=1)) == 1
    assert alerts(app, rule="no-such-rule") == []


def test_alert_record_has_spans_and_snippet(app: FastAPI) -> None:
    (alert,) = [a for a in alerts(app, rule="sanctions") if a["feed"] == "un-news"]

    assert alert["created_at"] == "2026-03-01T12:00:00Z"
    assert alert["item_url"] == "https://example.org/k1"
    assert [(s["field"], s["text"]) for s in alert["spans"]] == [
        ("title", "Sanctions"),
        ("content", "sanctions"),
    ]
    snippet = alert["snippet"]
    assert snippet["text"] == "The council discussed new sanctions on shipping, 100% of_them."
    ((start, end),) = snippet["marks"]
    assert snippet["text"][start:end] == "sanctions"


# ---------------------------------------------------------------------- token


def test_token_guards_the_api(guarded: FastAPI) -> None:
    missing = call(guarded, "/api/v1/feeds")
    wrong = call(guarded, "/api/v1/feeds", headers=bearer("nope"))
    in_query = call(guarded, "/api/v1/feeds", params={"token": TOKEN})
    right = call(guarded, "/api/v1/items", headers=bearer(TOKEN))

    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="feedwatch"'
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"].startswith("Bearer ")
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    # The query string is for feed readers, on the Atom feeds only.
    assert in_query.status_code == 401
    assert right.status_code == 200
    assert len(right.json()["items"]) == 5


def test_token_guards_the_atom_feeds_by_header_or_query(guarded: FastAPI) -> None:
    missing = call(guarded, "/alerts.atom")
    wrong = call(guarded, "/alerts.atom", params={"token": "nope"})
    by_query = call(guarded, "/alerts.atom", params={"token": TOKEN, "rule": "ai"})
    by_header = call(guarded, "/rules/ai/alerts.atom", headers=bearer(TOKEN))

    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert (by_query.status_code, by_header.status_code) == (200, 200)
    parsed = feedparser.parse(by_query.content)
    assert len(parsed.entries) == 2
    # The token never ends up in the feed (its self link included).
    assert TOKEN.encode() not in by_query.content
    assert parsed.feed.links[0].href == f"{BASE}/alerts.atom?rule=ai"


def test_probes_and_metrics_stay_open_with_a_token(guarded: FastAPI) -> None:
    assert [call(guarded, p).status_code for p in ("/healthz", "/readyz", "/metrics")] == [
        200,
        200,
        200,
    ]


def test_openapi_declares_security_only_with_a_token(app: FastAPI, guarded: FastAPI) -> None:
    open_doc = call(app, "/openapi.json").json()
    guarded_doc = call(guarded, "/openapi.json").json()

    assert "securitySchemes" not in open_doc.get("components", {})
    schemes = guarded_doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <token>`",
    }
    assert (schemes["token_query"]["in"], schemes["token_query"]["name"]) == ("query", "token")
    assert guarded_doc["paths"]["/api/v1/items"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in guarded_doc["paths"]["/healthz"]["get"]
    assert "401" in guarded_doc["paths"]["/api/v1/items"]["get"]["responses"]


def test_tokens_compare_as_utf8_bytes(guarded: FastAPI) -> None:
    # compare_digest on bytes: a non-ASCII token works in the header (UTF-8, which
    # Starlette hands over as Latin-1) and in the query (percent-encoded UTF-8), and
    # a non-ASCII wrong one is a 401, not a TypeError.
    wrong = ["s", TOKEN + "x", "ключ", TOKEN.upper(), TOKEN.encode().decode("latin-1")]
    statuses = [call(guarded, "/api/v1/feeds", headers=bearer(w)).status_code for w in wrong]
    right_header = call(guarded, "/api/v1/feeds", headers=bearer(TOKEN))
    right_query = call(guarded, "/alerts.atom", params={"token": TOKEN})

    assert statuses == [401] * len(wrong)
    assert (right_header.status_code, right_query.status_code) == (200, 200)


def test_create_app_refuses_an_empty_token(fw: Feedwatch, state: FakeState) -> None:
    with pytest.raises(ValueError, match="token must not be empty"):
        create_app(fw, state, Metrics(), token="")


# ---------------------------------------------------------------------- Atom


def test_atom_feed_is_valid_and_complete(app: FastAPI) -> None:
    response = call(app, "/alerts.atom")
    api = alerts(app)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/atom+xml"
    parsed = feedparser.parse(response.content)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id == "tag:feedwatch,2026:alerts"
    assert parsed.feed.title == "feedwatch alerts"
    assert parsed.feed.updated == "2026-03-01T13:00:00Z"
    assert parsed.feed.links[0].rel == "self"
    assert parsed.feed.links[0].href == f"{BASE}/alerts.atom"
    assert [e.id for e in parsed.entries] == [f"tag:feedwatch,2026:alert:{a['id']}" for a in api]
    first = parsed.entries[0]
    assert first.title == "[sanctions] САНКЦИИ против сети"
    assert first.link == "https://example.org/o1"
    assert first.updated == "2026-03-01T13:00:00Z"
    assert first.author == "osce"
    assert first.summary == "Новые санкции объявлены."
    assert [t.term for t in first.tags] == ["sanctions"]


def test_atom_entry_ids_are_stable(app: FastAPI, fw: Feedwatch) -> None:
    before = [e.id for e in feedparser.parse(call(app, "/alerts.atom").content).entries]
    # A later poll stores nothing new: the same ids come back, in the same order.
    fw.storage.sync_config(fw.config.feeds, fw.config.rules, [], NOW)
    after = [e.id for e in feedparser.parse(call(app, "/alerts.atom").content).entries]

    assert before == after
    assert len(set(before)) == 4


def test_atom_escapes_markup_and_drops_unsafe_links(app: FastAPI) -> None:
    response = call(app, "/alerts.atom", params={"rule": "ai"})

    raw = response.content
    assert b"<script>" not in raw
    assert b'&lt;script&gt;alert(1)&lt;/script&gt; Weather &amp; "AI"' in raw
    assert b"javascript:" not in raw
    parsed = feedparser.parse(raw)
    assert parsed.bozo == 0
    k3 = parsed.entries[0]
    assert k3.title == '[ai] <script>alert(1)</script> Weather & "AI"'
    # No usable link, so the snippet is the content too (RFC 4287 wants one of them).
    assert not [link for link in k3.get("links", []) if link.get("rel") == "alternate"]
    assert k3.content[0].value == k3.summary == "Storms <b>ahead</b>; AI forecasts help."
    assert k3.content[0].type == "text/plain"


def test_atom_per_rule_filter_and_path_form(app: FastAPI) -> None:
    by_query = feedparser.parse(call(app, "/alerts.atom", params={"rule": "sanctions"}).content)
    by_path = feedparser.parse(call(app, "/rules/sanctions/alerts.atom").content)

    assert [e.title.split("]")[0] for e in by_query.entries] == ["[sanctions"] * 2
    assert [e.id for e in by_path.entries] == [e.id for e in by_query.entries]
    assert by_query.feed.id == by_path.feed.id == "tag:feedwatch,2026:alerts:rule:sanctions"
    assert by_query.feed.title == "feedwatch alerts: sanctions"
    assert by_path.feed.links[0].href == f"{BASE}/rules/sanctions/alerts.atom"


def test_atom_unknown_rule_is_404(app: FastAPI) -> None:
    by_query = call(app, "/alerts.atom", params={"rule": "nope"})
    by_path = call(app, "/rules/nope/alerts.atom")

    assert (by_query.status_code, by_path.status_code) == (404, 404)
    assert by_query.json() == {"detail": "no rule named 'nope'"}


def test_atom_of_a_rule_without_alerts_is_an_empty_valid_feed(
    fw: Feedwatch, state: FakeState, metrics: Metrics
) -> None:
    config = parse_config(CONFIG + "  - {name: quiet, query: nothing}\n")
    quiet = make_app(config, storage=fw.storage)
    app = create_app(quiet, state, metrics, clock=lambda: NOW)

    parsed = feedparser.parse(call(app, "/rules/quiet/alerts.atom").content)

    assert parsed.bozo == 0
    assert parsed.entries == []
    assert parsed.feed.updated == "2026-03-01T15:00:00Z"


def test_build_atom_drops_characters_xml_cannot_carry() -> None:
    alert = StoredAlert(
        id=7,
        rule="ai",
        feed="bad\x00feed",
        item_id=1,
        item_title="Nul\x00 escape\x1b[31m bell\x07 lone\ud800 surrogate\ufffe end",
        item_url="https://example.org/a b",  # a space: not a usable link
        created_at=T0,
        spans=(),
        item_text="Tab\tand\nnewline stay; \x0c form feed goes.",
    )

    raw = build_atom([alert], feed_id="tag:x", title="t\x01", self_url=BASE, now=NOW)

    parsed = feedparser.parse(raw)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    (entry,) = parsed.entries
    assert entry.title == "[ai] Nul escape[31m bell lone surrogate end"
    assert entry.author == "badfeed"
    assert entry.summary == "Tab\tand\nnewline stay;  form feed goes."
    assert not [link for link in entry.get("links", []) if link.get("rel") == "alternate"]
    assert parsed.feed.title == "t"


# ---------------------------------------------------------------------- HttpServer


def test_http_server_serves_on_loopback_port_0_without_touching_signals(app: FastAPI) -> None:
    async def scenario() -> tuple[int, int, str, bool]:
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        server = HttpServer(app, "127.0.0.1", 0)
        await server.start()
        try:
            assert server.port != 0
            async with httpx.AsyncClient(trust_env=False) as client:
                response = await client.get(f"http://127.0.0.1:{server.port}/healthz")
                items = await client.get(f"http://127.0.0.1:{server.port}/api/v1/items")
            same = handlers == {sig: signal.getsignal(sig) for sig in handlers}
        finally:
            await server.stop()
        return response.status_code, len(items.json()["items"]), response.json()["status"], same

    status, count, health, same_handlers = asyncio.run(scenario())

    assert (status, count, health) == (200, 5, "ok")
    assert same_handlers


def test_http_server_stops_listening_and_reports_a_taken_port(app: FastAPI) -> None:
    async def scenario() -> tuple[type[BaseException], type[BaseException]]:
        first = HttpServer(app, "127.0.0.1", 0)
        await first.start()
        port = first.port
        second = HttpServer(app, "127.0.0.1", port)
        try:
            await second.start()
        except OSError as exc:
            taken: type[BaseException] = type(exc)
        else:  # pragma: no cover
            await second.stop()
            raise AssertionError("bound a taken port")
        await first.stop()
        await first.stop()  # twice is harmless
        async with httpx.AsyncClient(trust_env=False) as client:
            try:
                await client.get(f"http://127.0.0.1:{port}/healthz")
            except httpx.ConnectError as exc:
                refused: type[BaseException] = type(exc)
            else:  # pragma: no cover
                raise AssertionError("still listening")
        return taken, refused

    taken, refused = asyncio.run(scenario())

    assert issubclass(taken, OSError)
    assert refused is httpx.ConnectError


def test_stale_since_offsets_are_fine(app: FastAPI) -> None:
    # Far past and far future bounds: everything, and nothing.
    assert len(items(app, since="0001-01-01T00:00:00+01:00")) == 5
    assert items(app, since="9999-12-31T23:59:60-01:00") == []
    assert items(app, since=(T0 - timedelta(days=1)).isoformat()) == [
        "o1",
        "k4",
        "k3",
        "k2",
        "k1",
    ]
