"""Per-endpoint delivery state on webhooks, and the deliverer's queue per tenant (SPEC §10).

webhooks gains the endpoint's health: consecutive failures, the circuit (opened after a run
of failures), the earliest next attempt while it is open, and the last error. The partial
index of pending events is keyed by tenant first, so the deliverer takes a few due events
per endpoint (docs/operations.md, *Webhooks*); the downgrade restores the old index.

Revision ID: 0007_webhook_endpoint_state
Revises: 0006_perf
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_webhook_endpoint_state"
down_revision = "0006_perf"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("webhooks", sa.Column("consecutive_failures", sa.Integer(),
                                        server_default="0", nullable=False))
    op.add_column("webhooks", sa.Column("circuit_opened_at", sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column("webhooks", sa.Column("next_attempt_at", sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column("webhooks", sa.Column("last_error", sa.Text(), nullable=True))
    op.create_check_constraint(op.f("ck_webhooks_failures_not_negative"), "webhooks",
                               "consecutive_failures >= 0")
    op.create_index("ix_events_pending_tenant_id_next_attempt_at", "events",
                    ["tenant_id", "next_attempt_at"],
                    postgresql_where=sa.text("delivery = 'pending'"))
    op.drop_index("ix_events_pending_next_attempt_at", table_name="events")


def downgrade():
    op.create_index("ix_events_pending_next_attempt_at", "events", ["next_attempt_at"],
                    postgresql_where=sa.text("delivery = 'pending'"))
    op.drop_index("ix_events_pending_tenant_id_next_attempt_at", table_name="events")
    op.drop_constraint(op.f("ck_webhooks_failures_not_negative"), "webhooks", type_="check")
    op.drop_column("webhooks", "last_error")
    op.drop_column("webhooks", "next_attempt_at")
    op.drop_column("webhooks", "circuit_opened_at")
    op.drop_column("webhooks", "consecutive_failures")
