"""AdminKey: a tenant's key for the admin API (SPEC §9), stored only as a SHA-256 digest."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp

SCOPES = ("admin", "introspect")  # `admin` includes `introspect`


class AdminKey(Base):
    __tablename__ = "admin_keys"
    __table_args__ = (
        # The lookup of every admin request: a digest names at most one key.
        sa.UniqueConstraint("digest"),
        sa.CheckConstraint("octet_length(digest) = 32", name="digest_is_sha256"),
        sa.CheckConstraint("scope IN ('admin', 'introspect')", name="scope_known"),
        sa.Index("ix_admin_keys_tenant_id", "tenant_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(sa.Text)
    scope: Mapped[str] = mapped_column(sa.Text)
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = timestamp()
    # Written at most once a minute per key (introspection makes this a hot row).
    last_used_at: Mapped[datetime | None] = timestamp(nullable=True)
    revoked_at: Mapped[datetime | None] = timestamp(nullable=True)
