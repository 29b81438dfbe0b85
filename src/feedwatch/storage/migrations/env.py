"""Alembic environment for feedwatch: runs the revisions on a connection it is given.

Called only through :meth:`feedwatch.storage.sql.SqlStorage.migrate` (or a
developer drafting a revision with ``alembic_config``), which passes an open
connection, already inside the transaction it wants, in
``config.attributes["connection"]``. There is no offline (SQL script) mode and
no engine is created here.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from feedwatch.storage._tables import metadata


def run_migrations() -> None:
    if context.is_offline_mode():
        raise RuntimeError("feedwatch migrations have no offline mode; use SqlStorage.migrate()")
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "feedwatch migrations need a connection in config.attributes['connection']; "
            "run them through SqlStorage.migrate()"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
