"""Tenant: a namespace of users with its own lifetimes and signing keys."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
MAX_REUSE_INTERVAL = 300


class Tenant(Base):
    __tablename__ = "tenants"
    __table_args__ = (
        sa.CheckConstraint(f"slug ~ '{SLUG_PATTERN}'", name="slug_format"),
        sa.CheckConstraint(
            f"reuse_interval >= 0 AND reuse_interval <= {MAX_REUSE_INTERVAL}",
            name="reuse_interval_range",
        ),
        sa.CheckConstraint(
            "access_ttl > 0 AND refresh_ttl > 0 AND session_ttl > 0", name="positive_lifetimes"
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(sa.Text, unique=True)
    name: Mapped[str] = mapped_column(sa.Text)
    access_ttl: Mapped[int] = mapped_column(sa.Integer)
    refresh_ttl: Mapped[int] = mapped_column(sa.Integer)
    session_ttl: Mapped[int] = mapped_column(sa.Integer)
    reuse_interval: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = timestamp()
