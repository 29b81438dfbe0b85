"""Feed polling policy (failing_since, disabled feeds, permanent redirects); notices.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

Self-contained on purpose: a revision must not import feedwatch.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("failing_since", timestamp, nullable=True))
        batch.add_column(sa.Column("disabled_at", timestamp, nullable=True))
        batch.add_column(sa.Column("disabled_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("moved_candidate", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("moved_seen", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("fetch_url", sa.Text(), nullable=True))
        batch.add_column(sa.Column("ttl_minutes", sa.Integer(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("notice_subject", sa.Text(), nullable=True))
        batch.add_column(sa.Column("notice_text", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("notice_text")
        batch.drop_column("notice_subject")
    with op.batch_alter_table("feeds") as batch:
        for column in (
            "ttl_minutes",
            "fetch_url",
            "moved_seen",
            "moved_candidate",
            "disabled_reason",
            "disabled_at",
            "failing_since",
        ):
            batch.drop_column(column)
