"""ConsoleSession: an admin key exchanged for a browser session of the console (SPEC §14).

The cookie holds a random token; only its SHA-256 digest is stored, like admin keys and
refresh tokens, so a copy of the database signs nobody in. The session is bound to the admin
key it was opened with: every request checks, in the same statement, that the key is still
live, so revoking the key ends its console sessions at once.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp


class ConsoleSession(Base):
    __tablename__ = "console_sessions"
    __table_args__ = (
        # The lookup of every console request: a digest names at most one session.
        sa.UniqueConstraint("digest"),
        sa.CheckConstraint("octet_length(digest) = 32", name="digest_is_sha256"),
        sa.CheckConstraint("expires_at > created_at", name="expires_after_creation"),
        sa.Index("ix_console_sessions_admin_key_id", "admin_key_id"),
        sa.Index("ix_console_sessions_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    admin_key_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("admin_keys.id", ondelete="CASCADE"))
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = timestamp()
    # Touched by every request: idle expiry is last_seen_at + 30 minutes.
    last_seen_at: Mapped[datetime] = timestamp()
    # Absolute expiry, fixed at sign-in (12 hours), never extended.
    expires_at: Mapped[datetime] = timestamp()
