"""The delivery outbox: deliveries, delivery_alerts; subscribers can be disabled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28

Self-contained on purpose: a revision must not import feedwatch.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    timestamp = sa.DateTime(timezone=True)
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("disabled_at", timestamp, nullable=True))
        batch.add_column(sa.Column("disabled_reason", sa.Text(), nullable=True))

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=True),
        sa.Column("window_start", timestamp, nullable=True),
        sa.Column("window_end", timestamp, nullable=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", timestamp, nullable=False),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.Column("last_attempt_at", timestamp, nullable=True),
        sa.Column("sent_at", timestamp, nullable=True),
        sa.Column("sealed", sa.Boolean(), nullable=False),
        sa.Column("last_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], name="fk_deliveries_subscriber_id_subscribers"
        ),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name="fk_deliveries_alert_id_alerts"),
        sa.PrimaryKeyConstraint("id", name="pk_deliveries"),
        sa.UniqueConstraint("message_id", name="uq_deliveries_message_id"),
        sa.UniqueConstraint(
            "subscriber_id", "alert_id", name="uq_deliveries_subscriber_id_alert_id"
        ),
        sa.UniqueConstraint(
            "subscriber_id", "window_start", name="uq_deliveries_subscriber_id_window_start"
        ),
    )
    op.create_index(
        "ix_deliveries_status_next_attempt_at", "deliveries", ["status", "next_attempt_at"]
    )

    op.create_table(
        "delivery_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["deliveries.id"], name="fk_delivery_alerts_delivery_id_deliveries"
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            ["subscribers.id"],
            name="fk_delivery_alerts_subscriber_id_subscribers",
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.id"], name="fk_delivery_alerts_alert_id_alerts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_alerts"),
        sa.UniqueConstraint(
            "subscriber_id", "alert_id", name="uq_delivery_alerts_subscriber_id_alert_id"
        ),
    )
    op.create_index("ix_delivery_alerts_delivery_id", "delivery_alerts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("delivery_alerts")
    op.drop_table("deliveries")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("disabled_reason")
        batch.drop_column("disabled_at")
