"""The admin console (SPEC §14): console sessions (an admin key exchanged for a browser
session, stored as a digest), and the console's sign-in throttle counters.

Revision ID: 0009_console
Revises: 0008_signin
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_console"
down_revision = "0008_signin"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("admin_key_id", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_console_sessions_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["admin_key_id"], ["admin_keys.id"], ondelete="CASCADE",
                                name=op.f("fk_console_sessions_admin_key_id_admin_keys")),
        sa.UniqueConstraint("digest", name=op.f("uq_console_sessions_digest")),
        sa.CheckConstraint("octet_length(digest) = 32",
                           name=op.f("ck_console_sessions_digest_is_sha256")),
        sa.CheckConstraint("expires_at > created_at",
                           name=op.f("ck_console_sessions_expires_after_creation")),
    )
    op.create_index("ix_console_sessions_admin_key_id", "console_sessions", ["admin_key_id"])
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])

    op.drop_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts", type_="check")
    op.create_check_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts",
                               "kind IN ('user', 'user_addr', 'mfa', 'console', 'console_addr')")


def downgrade():
    op.execute("DELETE FROM login_attempts WHERE kind IN ('console', 'console_addr')")
    op.drop_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts", type_="check")
    op.create_check_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts",
                               "kind IN ('user', 'user_addr', 'mfa')")
    op.drop_table("console_sessions")
