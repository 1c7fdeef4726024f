"""RefreshToken: one link of a session's chain, stored as a SHA-256 digest only."""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    __table_args__ = (
        # The lookup of every refresh: scoped by tenant, unique within it.
        sa.UniqueConstraint("tenant_id", "digest"),
        # A token has at most one successor: the chain can never fork.
        sa.UniqueConstraint("parent_id"),
        sa.CheckConstraint("octet_length(digest) = 32", name="digest_is_sha256"),
        # A session has at most one current (not yet rotated) token.
        sa.Index(
            "uq_refresh_tokens_current_per_session",
            "session_id",
            unique=True,
            postgresql_where=sa.text("rotated_at IS NULL"),
        ),
        sa.Index("ix_refresh_tokens_session_id", "session_id"),
        sa.Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE")
    )
    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), sa.ForeignKey("sessions.id", ondelete="CASCADE")
    )
    # No foreign key: purge deletes old links without touching the live token after them.
    parent_id: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = timestamp()
    # Idle expiry: renewed by each rotation (the successor gets a new one), capped by the session.
    expires_at: Mapped[datetime] = timestamp()
    rotated_at: Mapped[datetime | None] = timestamp(nullable=True)
