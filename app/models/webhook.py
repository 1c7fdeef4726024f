"""Webhook: a tenant's one event endpoint (SPEC §10); the signing secret is encrypted at rest.

The row also holds the endpoint's delivery health (app.services.audit.webhooks): after
CIRCUIT_THRESHOLD failures in a row its circuit opens, and no event is sent to it before
`next_attempt_at`; then one event probes it, and a 2xx closes the circuit again.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp


class Webhook(Base):
    __tablename__ = "webhooks"
    __table_args__ = (
        sa.CheckConstraint("consecutive_failures >= 0", name="failures_not_negative"),
    )

    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(sa.Text)
    secret_encrypted: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = timestamp()
    # Failed deliveries since the last 2xx (any event of the tenant).
    consecutive_failures: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    # Set when the failures reach the threshold; cleared by the next 2xx.
    circuit_opened_at: Mapped[datetime | None] = timestamp(nullable=True)
    # While the circuit is open: nothing is sent before this (the backoff, then the probe's
    # lease). NULL while closed.
    next_attempt_at: Mapped[datetime | None] = timestamp(nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
