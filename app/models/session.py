"""AuthSession: one login, i.e. one family of refresh tokens.

The session row is the serialization point of rotation: every path that
rotates or revokes a token of this family locks this row first.
"""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp


class AuthSession(Base):
    __tablename__ = "sessions"
    __table_args__ = (
        sa.Index("ix_sessions_user_id", "user_id"),
        # The target of the tokens' (session, tenant) key: a token is of its session's tenant.
        sa.UniqueConstraint("id", "tenant_id"),
        sa.Index("ix_sessions_expires_at", "expires_at"),
        sa.Index(
            "ix_sessions_revoked_at",
            "revoked_at",
            postgresql_where=sa.text("revoked_at IS NOT NULL"),
        ),
        # The current token is one of this session's own tokens, or none (only between the
        # two inserts of a login). Checked at commit: a login inserts the session first.
        sa.ForeignKeyConstraint(
            ["id", "current_token_id"], ["refresh_tokens.session_id", "refresh_tokens.id"],
            name="fk_sessions_current_token", deferrable=True, initially="DEFERRED",
            use_alter=True,
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE")
    )
    user_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = timestamp()
    last_used_at: Mapped[datetime] = timestamp()
    # Absolute lifetime: fixed at login, never extended by rotation.
    expires_at: Mapped[datetime] = timestamp()
    revoked_at: Mapped[datetime | None] = timestamp(nullable=True)
    revoke_reason: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    user_agent: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    # Random per session, mixed into successor derivation (crypto.successor_token); NULL for
    # sessions started before it existed, which keep the original derivation.
    successor_salt: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    # The one current (not yet rotated) refresh token: a column holds one value, so a session
    # has at most one current token by construction (SPEC §5). Not indexed, so rotating
    # (which changes it and last_used_at) stays a HOT update of the session row.
    current_token_id: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    # How the user signed in (SPEC §13.4): when, with what (RFC 8176 `amr`), from which of
    # the tenant's apps. Every access token of the session carries auth_time and amr.
    auth_time: Mapped[datetime] = timestamp()
    amr: Mapped[list[str]] = mapped_column(ARRAY(sa.Text), server_default=sa.text("'{pwd}'"))
    client_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
