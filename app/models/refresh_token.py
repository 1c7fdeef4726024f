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
        # The target of sessions.current_token_id's foreign key (a session's current token
        # is one of its own), and the index of every lookup by session.
        sa.UniqueConstraint("session_id", "id"),
        # A token belongs to its session and to the session's tenant, one key for both: no
        # key to tenants of its own, whose KEY SHARE lock on the one tenant row, taken by
        # every successor's insert at once, made a MultiXact per refresh or so under load
        # (docs/performance.md). The session row it checks is the one the rotation locked.
        sa.ForeignKeyConstraint(["session_id", "tenant_id"], ["sessions.id", "sessions.tenant_id"],
                                ondelete="CASCADE"),
        sa.Index("ix_refresh_tokens_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.BigInteger)
    session_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    # No foreign key: purge deletes old links without touching the live token after them.
    parent_id: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = timestamp()
    # Idle expiry: renewed by each rotation (the successor gets a new one), capped by the session.
    expires_at: Mapped[datetime] = timestamp()
    # When it was exchanged for its successor (the reuse interval runs from here). Which token
    # is current is recorded on the session (sessions.current_token_id), not here: no index
    # covers this column, so marking a token rotated is a HOT update.
    rotated_at: Mapped[datetime | None] = timestamp(nullable=True)
