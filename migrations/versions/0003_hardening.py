"""Hardening: per-session successor salt; login counters per (tenant, user, address) and per
address across tenants.

Revision ID: 0003_hardening
Revises: 0002
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_hardening"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    # NULL = a session started before this revision: it keeps the legacy derivation.
    op.add_column("sessions", sa.Column("successor_salt", sa.LargeBinary(), nullable=True))
    # Per-tenant address counters are replaced by the cross-tenant table; they only held
    # the current window, so dropping them forgets at most one window of failures.
    op.execute("DELETE FROM login_attempts WHERE kind = 'addr'")
    op.drop_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts", type_="check")
    op.create_check_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts",
                               "kind IN ('user', 'user_addr')")
    op.create_table(
        "login_address_attempts",
        sa.Column("address", sa.Text(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_login_address_attempts")),
    )
    op.create_index("ix_login_address_attempts_window_start", "login_address_attempts",
                    ["window_start"])


def downgrade():
    op.drop_table("login_address_attempts")
    op.execute("DELETE FROM login_attempts WHERE kind = 'user_addr'")
    op.drop_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts", type_="check")
    op.create_check_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts",
                               "kind IN ('user', 'addr')")
    op.drop_column("sessions", "successor_salt")
