"""LoginAttempts: password-login attempts in the current window, per username and per address."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp


class LoginAttempts(Base):
    __tablename__ = "login_attempts"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('user', 'addr')", name="kind_known"),
        sa.Index("ix_login_attempts_window_start", "window_start"),
    )

    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # 'user' or 'addr'
    key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    window_start: Mapped[datetime] = timestamp()
    attempts: Mapped[int] = mapped_column(sa.Integer)
