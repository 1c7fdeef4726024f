"""Failed-login counters of the current window (SPEC §11).

`LoginAttempts` counts per tenant: kind 'user' is keyed by the username, kind 'user_addr'
by the username and the client's network, kind 'mfa' (wrong second-factor answers) by the
user id; the console's sign-in (SPEC §14) counts kind 'console' (key '': the whole tenant)
and 'console_addr' (keyed by the client's network). `LoginAddressAttempts` counts per client network
across every tenant, so one address gets one allowance however many tenants it tries.
"""
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
        sa.CheckConstraint("kind IN ('user', 'user_addr', 'mfa', 'console', 'console_addr')",
                           name="kind_known"),
        sa.Index("ix_login_attempts_window_start", "window_start"),
    )

    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # see the module docstring
    key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    window_start: Mapped[datetime] = timestamp()
    attempts: Mapped[int] = mapped_column(sa.Integer)


class LoginAddressAttempts(Base):
    __tablename__ = "login_address_attempts"
    __table_args__ = (sa.Index("ix_login_address_attempts_window_start", "window_start"),)

    address: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # IPv4, or an IPv6 /64
    window_start: Mapped[datetime] = timestamp()
    attempts: Mapped[int] = mapped_column(sa.Integer)
