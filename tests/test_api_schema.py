"""Property tests of every operation against the app's own OpenAPI document (schemathesis).

Schemathesis generates valid and invalid requests from ``/openapi.json`` and checks
each answer: no server error, a documented status code, a body that matches the
documented schema and content type, invalid input refused, valid input accepted.
The app runs over an in-memory SQLite database holding ``populate``'s data, with
no token (the document then declares no security). Few examples per operation, so
this takes seconds; the data is fixed, so every run explores the same space.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from test_server import CONFIG, NOW, FakeState
from test_storage_api import populate

from feedwatch.config import parse_config
from feedwatch.core import make_app
from feedwatch.metrics import Metrics
from feedwatch.server import create_app
from feedwatch.storage.sql import open_storage


def _clock() -> datetime:
    return NOW


def _app() -> FastAPI:
    storage = open_storage("sqlite://")
    storage.migrate()
    populate(storage)
    fw = make_app(
        parse_config(CONFIG, database_override="sqlite://"), storage=storage, clock=_clock
    )
    return create_app(fw, FakeState(), Metrics(), clock=_clock)


APP = _app()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def test_the_document_lists_every_operation() -> None:
    paths = set(APP.openapi()["paths"])

    assert paths == {
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/feeds",
        "/api/v1/items",
        "/api/v1/alerts",
        "/alerts.atom",
        "/rules/{name}/alerts.atom",
    }


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case: schemathesis.Case[Any]) -> None:
    case.call_and_validate()
