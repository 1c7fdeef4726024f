"""Sign-in beyond a bare password (SPEC §13): second factors, recovery codes, challenge
sessions, authorization codes; how each session signed in; the tenants' sign-in policy.

Existing sessions signed in with a password when they started: auth_time = created_at,
amr = {pwd}.

Revision ID: 0008_signin
Revises: 0007_webhook_endpoint_state
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008_signin"
down_revision = "0007_webhook_endpoint_state"
branch_labels = None
depends_on = None


def _owner_columns():
    return [
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
    ]


def _owner_keys(table):
    return [
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f(f"fk_{table}_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f(f"fk_{table}_user_id_users")),
    ]


def upgrade():
    op.add_column("tenants", sa.Column("mfa", sa.Text(), server_default="optional",
                                       nullable=False))
    op.add_column("tenants", sa.Column("password_grant", sa.Boolean(),
                                       server_default=sa.true(), nullable=False))
    op.add_column("tenants", sa.Column("step_up_max_age", sa.Integer(), server_default="900",
                                       nullable=False))
    op.add_column("tenants", sa.Column("webauthn_rp_id", sa.Text(), nullable=True))
    op.add_column("tenants", sa.Column("webauthn_origins", postgresql.ARRAY(sa.Text()),
                                       server_default=sa.text("'{}'::text[]"), nullable=False))
    op.create_check_constraint(op.f("ck_tenants_mfa_known"), "tenants",
                               "mfa IN ('optional', 'required')")
    op.create_check_constraint(op.f("ck_tenants_step_up_max_age_range"), "tenants",
                               "step_up_max_age BETWEEN 1 AND 86400")

    op.add_column("sessions", sa.Column("auth_time", sa.DateTime(timezone=True), nullable=True))
    op.add_column("sessions", sa.Column("amr", postgresql.ARRAY(sa.Text()),
                                        server_default=sa.text("'{pwd}'"), nullable=False))
    op.add_column("sessions", sa.Column("client_id", sa.Text(), nullable=True))
    op.execute("UPDATE sessions SET auth_time = created_at")
    # The update queued checks of the deferred current-token key; run them before the ALTER.
    op.execute("SET CONSTRAINTS ALL IMMEDIATE")
    op.alter_column("sessions", "auth_time", nullable=False)

    op.drop_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts", type_="check")
    op.create_check_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts",
                               "kind IN ('user', 'user_addr', 'mfa')")

    op.create_table(
        "factors",
        *_owner_columns(),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("secret_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        *_owner_keys("factors"),
        sa.CheckConstraint("type IN ('totp', 'passkey')", name=op.f("ck_factors_type_known")),
        sa.CheckConstraint("type <> 'totp' OR secret_encrypted IS NOT NULL",
                           name=op.f("ck_factors_totp_has_secret")),
    )
    op.create_index("ix_factors_user_id", "factors", ["user_id"])
    op.create_index("ix_factors_created_at_pending", "factors", ["created_at"],
                    postgresql_where=sa.text("confirmed_at IS NULL"))

    op.create_table(
        "recovery_codes",
        *_owner_columns(),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        *_owner_keys("recovery_codes"),
        sa.UniqueConstraint("user_id", "digest", name=op.f("uq_recovery_codes_user_id_digest")),
        sa.CheckConstraint("octet_length(digest) = 32",
                           name=op.f("ck_recovery_codes_digest_is_sha256")),
    )

    op.create_table(
        "challenge_sessions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("code_challenge", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=True),
        sa.Column("amr", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("state", sa.Text(), server_default="open", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_fingerprint", sa.LargeBinary(), nullable=True),
        sa.Column("enroll_factor_id", sa.BigInteger(), nullable=True),
        *_owner_keys("challenge_sessions"),
        sa.UniqueConstraint("tenant_id", "digest",
                            name=op.f("uq_challenge_sessions_tenant_id_digest")),
        sa.CheckConstraint("octet_length(digest) = 32",
                           name=op.f("ck_challenge_sessions_digest_is_sha256")),
        sa.CheckConstraint("state IN ('open', 'used', 'ended')",
                           name=op.f("ck_challenge_sessions_state_known")),
    )
    op.create_index("ix_challenge_sessions_expires_at", "challenge_sessions", ["expires_at"])

    op.create_table(
        "authorization_codes",
        *_owner_columns(),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("code_challenge", sa.Text(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=True),
        sa.Column("amr", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("auth_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("password_fingerprint", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("session_id", postgresql.UUID(as_uuid=True), nullable=True),
        *_owner_keys("authorization_codes"),
        sa.UniqueConstraint("tenant_id", "digest",
                            name=op.f("uq_authorization_codes_tenant_id_digest")),
        sa.CheckConstraint("octet_length(digest) = 32",
                           name=op.f("ck_authorization_codes_digest_is_sha256")),
    )
    op.create_index("ix_authorization_codes_expires_at", "authorization_codes", ["expires_at"])


def downgrade():
    op.drop_table("authorization_codes")
    op.drop_table("challenge_sessions")
    op.drop_table("recovery_codes")
    op.drop_table("factors")
    op.execute("DELETE FROM login_attempts WHERE kind = 'mfa'")
    op.drop_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts", type_="check")
    op.create_check_constraint(op.f("ck_login_attempts_kind_known"), "login_attempts",
                               "kind IN ('user', 'user_addr')")
    op.drop_column("sessions", "client_id")
    op.drop_column("sessions", "amr")
    op.drop_column("sessions", "auth_time")
    op.drop_constraint(op.f("ck_tenants_step_up_max_age_range"), "tenants", type_="check")
    op.drop_constraint(op.f("ck_tenants_mfa_known"), "tenants", type_="check")
    for column in ("webauthn_origins", "webauthn_rp_id", "step_up_max_age", "password_grant",
                   "mfa"):
        op.drop_column("tenants", column)
