"""Refresh tokens: one (session, tenant) key to their session instead of a key to the session
and another to the tenant (performance round 3, issue 26).

The tenant key took a KEY SHARE lock on the tenant row at every successor's insert; with many
refreshes of one tenant at once that made MultiXacts (docs/performance.md). The composite key
still ties each token to its tenant (the session's), and the session row it checks is the
one the rotation has locked already.

On a large table: the new key is added NOT VALID and validated afterwards (SHARE UPDATE
EXCLUSIVE: refreshes go on while the existing rows are checked).

Revision ID: 0011_token_session_key
Revises: 0010_passkeys
Create Date: 2026-12-06
"""
from alembic import op

revision = "0011_token_session_key"
down_revision = "0010_passkeys"
branch_labels = None
depends_on = None


def upgrade():
    op.create_unique_constraint(op.f("uq_sessions_id_tenant_id"), "sessions", ["id", "tenant_id"])
    op.drop_constraint("fk_refresh_tokens_session_id_sessions", "refresh_tokens",
                       type_="foreignkey")
    op.drop_constraint("fk_refresh_tokens_tenant_id_tenants", "refresh_tokens",
                       type_="foreignkey")
    op.execute("ALTER TABLE refresh_tokens ADD CONSTRAINT fk_refresh_tokens_session_id_sessions"
               " FOREIGN KEY (session_id, tenant_id) REFERENCES sessions (id, tenant_id)"
               " ON DELETE CASCADE NOT VALID")
    op.execute("ALTER TABLE refresh_tokens VALIDATE CONSTRAINT"
               " fk_refresh_tokens_session_id_sessions")


def downgrade():
    op.drop_constraint("fk_refresh_tokens_session_id_sessions", "refresh_tokens",
                       type_="foreignkey")
    op.create_foreign_key(op.f("fk_refresh_tokens_tenant_id_tenants"), "refresh_tokens",
                          "tenants", ["tenant_id"], ["id"], ondelete="CASCADE")
    op.create_foreign_key(op.f("fk_refresh_tokens_session_id_sessions"), "refresh_tokens",
                          "sessions", ["session_id"], ["id"], ondelete="CASCADE")
    op.drop_constraint(op.f("uq_sessions_id_tenant_id"), "sessions", type_="unique")
