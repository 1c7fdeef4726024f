"""SigningKey: a tenant's Ed25519 key; the private half is encrypted at rest."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp


class SigningKey(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (
        sa.UniqueConstraint("kid"),
        # One current key per tenant.
        sa.Index(
            "uq_signing_keys_current_per_tenant",
            "tenant_id",
            unique=True,
            postgresql_where=sa.text("retired_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE")
    )
    kid: Mapped[str] = mapped_column(sa.Text)
    private_key_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)
    public_jwk: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = timestamp()
    retired_at: Mapped[datetime | None] = timestamp(nullable=True)
