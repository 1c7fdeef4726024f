"""Login attempt counters for brute-force throttling, shared by every worker.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_attempts",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.CheckConstraint("kind IN ('user', 'addr')", name=op.f("ck_login_attempts_kind_known")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_login_attempts_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "key", name=op.f("pk_login_attempts")),
    )
    # Purge drops windows that ended long ago.
    op.create_index("ix_login_attempts_window_start", "login_attempts", ["window_start"])


def downgrade():
    op.drop_table("login_attempts")
