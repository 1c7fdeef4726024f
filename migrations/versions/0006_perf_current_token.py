"""The current token lives on the session: sessions.current_token_id (SPEC §5).

Replaces the partial unique index "one token WHERE rotated_at IS NULL per session": with no
index over rotated_at, marking a token rotated is a HOT update (docs/performance.md). A
session holds one current token by construction; a foreign key (id, current_token_id) ->
refresh_tokens (session_id, id) makes it one of its own tokens. Existing sessions get their
current token; the downgrade restores the index from the column.

Revision ID: 0006_perf
Revises: 0005_events
Create Date: 2026-11-28
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_perf"
down_revision = "0005_events"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("sessions", sa.Column("current_token_id", sa.BigInteger(), nullable=True))
    op.create_unique_constraint(op.f("uq_refresh_tokens_session_id_id"), "refresh_tokens",
                                ["session_id", "id"])
    op.execute("""
        UPDATE sessions s SET current_token_id = t.id
        FROM refresh_tokens t
        WHERE t.session_id = s.id AND t.rotated_at IS NULL
    """)
    op.create_foreign_key("fk_sessions_current_token", "sessions", "refresh_tokens",
                          ["id", "current_token_id"], ["session_id", "id"],
                          deferrable=True, initially="DEFERRED")
    op.drop_index("uq_refresh_tokens_current_per_session", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_session_id", table_name="refresh_tokens")


def downgrade():
    # A token that is not its session's current one counts as rotated for the old index.
    op.execute("""
        UPDATE refresh_tokens t SET rotated_at = t.created_at
        WHERE t.rotated_at IS NULL AND NOT EXISTS (
            SELECT 1 FROM sessions s WHERE s.id = t.session_id AND s.current_token_id = t.id)
    """)
    op.create_index("ix_refresh_tokens_session_id", "refresh_tokens", ["session_id"])
    op.create_index("uq_refresh_tokens_current_per_session", "refresh_tokens", ["session_id"],
                    unique=True, postgresql_where=sa.text("rotated_at IS NULL"))
    op.drop_constraint("fk_sessions_current_token", "sessions", type_="foreignkey")
    op.drop_constraint(op.f("uq_refresh_tokens_session_id_id"), "refresh_tokens", type_="unique")
    op.drop_column("sessions", "current_token_id")
