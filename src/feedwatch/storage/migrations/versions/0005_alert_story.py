"""Alerts are unique per (rule, story): a story key (hash of the canonical URL) on alerts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Existing alerts are backfilled: the earliest alert (by created_at, then id) of
each (rule, item canonical URL) gets the key, later duplicates keep NULL (a NULL
key is unique per (rule, item) only), so the unique index holds on every
database. The index on items.canonical_url goes: no query uses it, and
PostgreSQL refuses an index entry above about 2.7 kB, which made a long link
fail the whole commit of its feed.

Self-contained on purpose: a revision must not import feedwatch (the key is
the one ``feedwatch.storage.sql`` computes: SHA-256 hex of the URL's UTF-8).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_items_canonical_url", table_name="items")
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(sa.Column("story_key", sa.String(64), nullable=True))

    alerts = sa.table(
        "alerts",
        sa.column("id", sa.Integer()),
        sa.column("rule_id", sa.Integer()),
        sa.column("item_id", sa.Integer()),
        sa.column("created_at"),
        sa.column("story_key", sa.String(64)),
    )
    items = sa.table("items", sa.column("id", sa.Integer()), sa.column("canonical_url", sa.Text()))
    connection = op.get_bind()
    # Sorted so that the alerts of one (rule, URL) are adjacent, earliest first.
    duplicates = connection.execute(
        sa.select(alerts.c.id, alerts.c.rule_id, items.c.canonical_url)
        .join(items, items.c.id == alerts.c.item_id)
        .where(items.c.canonical_url.is_not(None))
        .order_by(alerts.c.rule_id, items.c.canonical_url, alerts.c.created_at, alerts.c.id)
        .execution_options(yield_per=1000)  # streamed: only the firsts are kept
    )
    firsts: list[dict[str, object]] = []
    previous: tuple[int, str] | None = None
    for alert_id, rule_id, url in duplicates:
        if (rule_id, url) != previous:
            previous = (rule_id, url)
            key = hashlib.sha256(url.encode("utf-8")).hexdigest()
            firsts.append({"alert_id": alert_id, "key": key})
    if firsts:
        connection.execute(
            alerts.update()
            .where(alerts.c.id == sa.bindparam("alert_id"))
            .values(story_key=sa.bindparam("key")),
            firsts,
        )

    op.create_index("ix_alerts_rule_id_story_key", "alerts", ["rule_id", "story_key"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_alerts_rule_id_story_key", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("story_key")
    op.create_index("ix_items_canonical_url", "items", ["canonical_url"])
