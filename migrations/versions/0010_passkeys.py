"""Passkeys (SPEC §13.5): credentials on factors, the users' WebAuthn handle, registration
challenges, the sign-in challenge on challenge sessions, the tenants' decoy key.

Existing tenants get a random decoy key (gen_random_uuid() draws from the server's strong
random source); existing challenge sessions carry no WebAuthn challenge.

Revision ID: 0010_passkeys
Revises: 0009_console
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010_passkeys"
down_revision = "0009_console"
branch_labels = None
depends_on = None

DECOY_KEY = "uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())"


def upgrade():
    op.add_column("tenants", sa.Column("webauthn_decoy_key", sa.LargeBinary(),
                                       server_default=sa.text(DECOY_KEY), nullable=False))
    op.add_column("users", sa.Column("webauthn_user_handle", sa.LargeBinary(), nullable=True))

    op.add_column("factors", sa.Column("credential_id", sa.LargeBinary(), nullable=True))
    op.add_column("factors", sa.Column("public_key", sa.LargeBinary(), nullable=True))
    op.add_column("factors", sa.Column("sign_count", sa.BigInteger(), nullable=True))
    op.add_column("factors", sa.Column("transports", postgresql.ARRAY(sa.Text()),
                                       nullable=True))
    op.create_unique_constraint(op.f("uq_factors_tenant_id_credential_id"), "factors",
                                ["tenant_id", "credential_id"])
    op.create_check_constraint(
        op.f("ck_factors_passkey_has_credential"), "factors",
        "type <> 'passkey' OR (credential_id IS NOT NULL AND public_key IS NOT NULL AND "
        "sign_count IS NOT NULL AND confirmed_at IS NOT NULL)")
    op.create_check_constraint(op.f("ck_factors_credential_id_length"), "factors",
                               "octet_length(credential_id) BETWEEN 1 AND 1023")
    op.create_check_constraint(op.f("ck_factors_sign_count_range"), "factors",
                               "sign_count BETWEEN 0 AND 4294967295")

    op.add_column("challenge_sessions", sa.Column("webauthn_challenge", sa.LargeBinary(),
                                                  nullable=True))
    op.add_column("challenge_sessions", sa.Column("discoverable", sa.Boolean(),
                                                  server_default=sa.false(), nullable=False))
    op.create_check_constraint(op.f("ck_challenge_sessions_webauthn_challenge_is_sha256"),
                               "challenge_sessions", "octet_length(webauthn_challenge) = 32")

    op.create_table(
        "passkey_registrations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkey_registrations")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name=op.f("fk_passkey_registrations_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name=op.f("fk_passkey_registrations_user_id_users")),
        sa.UniqueConstraint("tenant_id", "digest",
                            name=op.f("uq_passkey_registrations_tenant_id_digest")),
        sa.CheckConstraint("octet_length(digest) = 32",
                           name=op.f("ck_passkey_registrations_digest_is_sha256")),
    )
    op.create_index("ix_passkey_registrations_user_id", "passkey_registrations", ["user_id"])
    op.create_index("ix_passkey_registrations_expires_at", "passkey_registrations",
                    ["expires_at"])


def downgrade():
    op.drop_table("passkey_registrations")
    op.drop_constraint(op.f("ck_challenge_sessions_webauthn_challenge_is_sha256"),
                       "challenge_sessions", type_="check")
    op.drop_column("challenge_sessions", "discoverable")
    op.drop_column("challenge_sessions", "webauthn_challenge")
    # The schema before passkeys knows no passkey factors (their type stays allowed, but a
    # factor row without its credential would be one nobody can answer with).
    op.execute("DELETE FROM factors WHERE type = 'passkey'")
    # ...and a user left without a second factor keeps no recovery codes (SPEC §13.1).
    op.execute("DELETE FROM recovery_codes r WHERE NOT EXISTS (SELECT 1 FROM factors f "
               "WHERE f.user_id = r.user_id AND f.confirmed_at IS NOT NULL)")
    op.drop_constraint(op.f("ck_factors_sign_count_range"), "factors", type_="check")
    op.drop_constraint(op.f("ck_factors_credential_id_length"), "factors", type_="check")
    op.drop_constraint(op.f("ck_factors_passkey_has_credential"), "factors", type_="check")
    op.drop_constraint(op.f("uq_factors_tenant_id_credential_id"), "factors", type_="unique")
    for column in ("transports", "sign_count", "public_key", "credential_id"):
        op.drop_column("factors", column)
    op.drop_column("users", "webauthn_user_handle")
    op.drop_column("tenants", "webauthn_decoy_key")
