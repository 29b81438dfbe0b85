"""Alembic migrations of the feedwatch schema, shipped inside the package.

Holds ``env.py`` and the revisions in ``versions/``; applied only by
:meth:`feedwatch.storage.sql.SqlStorage.migrate`, which builds the Alembic
``Config`` in code (there is no ``alembic.ini``) and hands ``env.py`` its
connection. This package is never imported at run time; Alembic loads its files
by path.

Adding a revision after changing ``storage/_tables.py``: draft it with
autogenerate against a database migrated to the current head, e.g.::

    from alembic import command
    from feedwatch.storage.sql import alembic_config, open_storage

    storage = open_storage("sqlite:///draft.db")
    storage.migrate()
    with storage.engine.begin() as conn:
        config = alembic_config(conn)
        command.revision(config, message="what changed", autogenerate=True, rev_id="0002")

then review it by hand: revisions must not import feedwatch (write
``sa.DateTime(timezone=True)`` for ``UTCDateTime``), and on SQLite an ALTER goes
through ``op.batch_alter_table``. ``test_models_match_migrations`` fails until
models and revisions agree.
"""
