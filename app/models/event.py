"""Event: one security event (SPEC §10), written in the transaction of the change it describes.

The row is also the webhook outbox entry: `delivery` says what the deliverer still owes it.
"""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp

# pending: a webhook is owed; delivered: a 2xx came back; failed: retries ran out;
# none: the tenant had no webhook when the event was written (or it was removed).
DELIVERY_STATES = ("pending", "delivered", "failed", "none")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        sa.CheckConstraint(
            "delivery IN ('pending', 'delivered', 'failed', 'none')", name="delivery_known"),
        sa.CheckConstraint("actor_type IN ('user', 'admin_key', 'cli', 'system')",
                           name="actor_type_known"),
        # The admin listing pages by id within a tenant.
        sa.Index("ix_events_tenant_id_xact_id_id", "tenant_id", "xact_id", "id"),
        # The deliverer's queue, per endpoint (tenant), and the pending gauges: only rows
        # still owed a delivery.
        sa.Index("ix_events_pending_tenant_id_next_attempt_at", "tenant_id", "next_attempt_at",
                 postgresql_where=sa.text("delivery = 'pending'")),
        sa.Index("ix_events_occurred_at", "occurred_at"),
        # login.throttled at most once per throttle key and window (SPEC §10).
        sa.Index("uq_events_tenant_id_dedupe_key", "tenant_id", "dedupe_key", unique=True,
                 postgresql_where=sa.text("dedupe_key IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    # The writing transaction's 64-bit id (pg_current_xact_id()): readers list only events
    # older than every transaction still running, so a page never skips a late commit.
    xact_id: Mapped[int] = mapped_column(sa.BigInteger)
    type: Mapped[str] = mapped_column(sa.Text)
    occurred_at: Mapped[datetime] = timestamp()
    actor_type: Mapped[str] = mapped_column(sa.Text)
    actor_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    data: Mapped[dict] = mapped_column(JSONB)
    dedupe_key: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    delivery: Mapped[str] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")
    next_attempt_at: Mapped[datetime | None] = timestamp(nullable=True)
    # A deliverer's claim: nobody else sends the event before lease_until.
    lease_until: Mapped[datetime | None] = timestamp(nullable=True)
    lease_token: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    delivered_at: Mapped[datetime | None] = timestamp(nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
