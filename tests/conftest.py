"""Shared pytest fixtures. Add yours below, each with a docstring saying what it gives.

Database fixtures (every test gets a database of its own, empty unless said):

* ``sqlite_url``: URL of a SQLite file in the test's tmp_path (not created, not migrated).
* ``pg_url``: URL of a fresh PostgreSQL schema on the server named by
  ``FEEDWATCH_TEST_POSTGRES_URL`` (default below); the schema is dropped afterwards.
  Tests using it skip when the server is unreachable, or fail if
  ``FEEDWATCH_REQUIRE_POSTGRES=1`` (CI sets it). Mark such tests ``@pytest.mark.postgres``.
* ``db_url``: ``sqlite_url``, then ``pg_url`` (parametrised; the PostgreSQL case is
  marked ``postgres``), for tests that open the database themselves (CLI, core).
* ``storage``: a migrated :class:`~feedwatch.storage.sql.SqlStorage`, once on SQLite
  and once on PostgreSQL (built on ``db_url``; ``-m "not postgres"`` runs SQLite only).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from feedwatch.storage.sql import SqlStorage, open_storage

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@cache
def _postgres_admin_url() -> str:
    """The server URL for the test run, with the psycopg 3 driver."""
    url = make_url(os.environ.get("FEEDWATCH_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@cache
def _postgres_unreachable() -> str | None:
    """Why the test server cannot be used, or None if it can (checked once per run)."""
    engine = sa.create_engine(_postgres_admin_url(), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        where = make_url(_postgres_admin_url()).render_as_string(hide_password=True)
        cause = getattr(exc, "orig", None) or exc
        return f"PostgreSQL at {where} is unreachable: {str(cause).splitlines()[0]}"
    finally:
        engine.dispose()
    return None


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite database file in tmp_path (the file does not exist yet)."""
    return f"sqlite:///{tmp_path / 'feedwatch.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL schema, first on the search_path; dropped after."""
    reason = _postgres_unreachable()
    if reason is not None:
        if os.environ.get("FEEDWATCH_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} (FEEDWATCH_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(_postgres_admin_url())
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        url = make_url(_postgres_admin_url()).update_query_dict(
            {"options": f"-csearch_path={schema}"}
        )
        yield url.render_as_string(hide_password=False)
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """``sqlite_url`` or ``pg_url``: one run of the test per backend."""
    return str(request.getfixturevalue(f"{'pg' if request.param == 'postgres' else 'sqlite'}_url"))


@pytest.fixture
def storage(db_url: str) -> Iterator[SqlStorage]:
    """A migrated SqlStorage on SQLite, then on PostgreSQL; closed after the test."""
    storage = open_storage(db_url)
    storage.migrate()
    yield storage
    storage.close()
