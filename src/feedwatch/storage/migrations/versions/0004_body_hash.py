"""The fingerprint of the last document parsed, so that an unchanged 200 is not parsed again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28

Self-contained on purpose: a revision must not import feedwatch.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.add_column(sa.Column("body_hash", sa.Text(), nullable=True))
        batch.add_column(sa.Column("body_error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feeds") as batch:
        batch.drop_column("body_error")
        batch.drop_column("body_hash")
