"""Initial schema: tenants, users, sessions, refresh tokens, signing keys (SPEC §5, §6).

Reviewed by hand: the invariants of rotation are constraints here, so the
database refuses a forked chain even if the code had a bug.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def timestamp(name, nullable=False):
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade():
    op.create_table(
        "tenants",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("slug", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("access_ttl", sa.Integer(), nullable=False),
        sa.Column("refresh_ttl", sa.Integer(), nullable=False),
        sa.Column("session_ttl", sa.Integer(), nullable=False),
        sa.Column("reuse_interval", sa.Integer(), nullable=False),
        timestamp("created_at"),
        sa.CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'",
                           name=op.f("ck_tenants_slug_format")),
        sa.CheckConstraint("access_ttl > 0 AND refresh_ttl > 0 AND session_ttl > 0",
                           name=op.f("ck_tenants_positive_lifetimes")),
        sa.CheckConstraint("reuse_interval >= 0 AND reuse_interval <= 300",
                           name=op.f("ck_tenants_reuse_interval_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.UniqueConstraint("slug", name=op.f("uq_tenants_slug")),
    )
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("kid", sa.Text(), nullable=False),
        sa.Column("private_key_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("public_jwk", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        timestamp("created_at"),
        timestamp("retired_at", nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_signing_keys_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("kid", name=op.f("uq_signing_keys_kid")),
    )
    # At most one current key per tenant.
    op.create_index("uq_signing_keys_current_per_tenant", "signing_keys", ["tenant_id"],
                    unique=True, postgresql_where=sa.text("retired_at IS NULL"))

    op.create_table(
        "users",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        timestamp("created_at"),
        timestamp("disabled_at", nullable=True),
        sa.CheckConstraint("length(username) BETWEEN 1 AND 150",
                           name=op.f("ck_users_username_length")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_users_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("tenant_id", "username", name=op.f("uq_users_tenant_id_username")),
    )

    op.create_table(
        "sessions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        timestamp("created_at"),
        timestamp("last_used_at"),
        timestamp("expires_at"),
        timestamp("revoked_at", nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_sessions_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_user_id", "sessions", ["user_id"])
    # Purge scans: expired sessions, and revoked ones (a small partial index).
    op.create_index("ix_sessions_expires_at", "sessions", ["expires_at"])
    op.create_index("ix_sessions_revoked_at", "sessions", ["revoked_at"],
                    postgresql_where=sa.text("revoked_at IS NOT NULL"))

    op.create_table(
        "refresh_tokens",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("parent_id", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        timestamp("created_at"),
        timestamp("expires_at"),
        timestamp("rotated_at", nullable=True),
        sa.CheckConstraint("octet_length(digest) = 32",
                           name=op.f("ck_refresh_tokens_digest_is_sha256")),
        sa.ForeignKeyConstraint(["session_id"], ["sessions.id"], ondelete="CASCADE",
                                name=op.f("fk_refresh_tokens_session_id_sessions")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_refresh_tokens_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refresh_tokens")),
        # A token has at most one successor: the chain cannot fork. parent_id has no foreign
        # key on purpose: purging an old link must never update (or wait for) the live one
        # after it, so it stays as a plain historical pointer.
        sa.UniqueConstraint("parent_id", name=op.f("uq_refresh_tokens_parent_id")),
        # The refresh lookup, scoped by tenant.
        sa.UniqueConstraint("tenant_id", "digest", name=op.f("uq_refresh_tokens_tenant_id_digest")),
    )
    # A session has at most one current (unrotated) token.
    op.create_index("uq_refresh_tokens_current_per_session", "refresh_tokens", ["session_id"],
                    unique=True, postgresql_where=sa.text("rotated_at IS NULL"))
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])
    op.create_index("ix_refresh_tokens_expires_at", "refresh_tokens", ["expires_at"])


def downgrade():
    op.drop_table("refresh_tokens")
    op.drop_table("sessions")
    op.drop_table("users")
    op.drop_table("signing_keys")
    op.drop_table("tenants")
