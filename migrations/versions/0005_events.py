"""Security events (a transactional outbox) and per-tenant webhooks (SPEC §10).

Revision ID: 0005_events
Revises: 0002
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_events"
down_revision = "0004_admin"
branch_labels = None
depends_on = None


def timestamp(name, nullable=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade():
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("xact_id", sa.BigInteger(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        timestamp("occurred_at"),
        sa.Column("actor_type", sa.Text(), nullable=False),
        sa.Column("actor_id", sa.Text(), nullable=True),
        sa.Column("data", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dedupe_key", sa.Text(), nullable=True),
        sa.Column("delivery", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        timestamp("next_attempt_at", nullable=True),
        timestamp("lease_until", nullable=True),
        sa.Column("lease_token", sa.Text(), nullable=True),
        timestamp("delivered_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("delivery IN ('pending', 'delivered', 'failed', 'none')",
                           name=op.f("ck_events_delivery_known")),
        sa.CheckConstraint("actor_type IN ('user', 'admin_key', 'cli', 'system')",
                           name=op.f("ck_events_actor_type_known")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_events_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_tenant_id_xact_id_id", "events", ["tenant_id", "xact_id", "id"])
    op.create_index("ix_events_pending_next_attempt_at", "events", ["next_attempt_at"],
                    postgresql_where=sa.text("delivery = 'pending'"))
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
    op.create_index("uq_events_tenant_id_dedupe_key", "events", ["tenant_id", "dedupe_key"],
                    unique=True, postgresql_where=sa.text("dedupe_key IS NOT NULL"))
    op.create_table(
        "webhooks",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=False),
        timestamp("created_at"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_webhooks_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_webhooks")),
    )


def downgrade():
    op.drop_table("webhooks")
    op.drop_table("events")
