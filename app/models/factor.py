"""Second factors (SPEC §13.1): a user's TOTP generators and passkeys, and recovery codes."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import UserOwned
from app.models.base import timestamp

FACTOR_TYPES = ("totp", "passkey")


class Factor(UserOwned, Base):
    """One second factor. A TOTP factor is pending (not usable at sign-in) until confirmed."""

    __tablename__ = "factors"
    __table_args__ = (
        sa.CheckConstraint("type IN ('totp', 'passkey')", name="type_known"),
        sa.CheckConstraint("type <> 'totp' OR secret_encrypted IS NOT NULL",
                           name="totp_has_secret"),
        sa.Index("ix_factors_user_id", "user_id"),
        sa.Index("ix_factors_created_at_pending", "created_at",
                 postgresql_where=sa.text("confirmed_at IS NULL")),
    )

    type: Mapped[str] = mapped_column(sa.Text)
    name: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = timestamp()
    confirmed_at: Mapped[datetime | None] = timestamp(nullable=True)
    last_used_at: Mapped[datetime | None] = timestamp(nullable=True)
    # TOTP: the 160-bit secret, encrypted with the service secret (like signing keys), and
    # the last time step accepted: a code of that step or an earlier one is refused.
    secret_encrypted: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    last_step: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)


class RecoveryCode(UserOwned, Base):
    """One single-use recovery code, stored only as its SHA-256 digest."""

    __tablename__ = "recovery_codes"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "digest"),
        sa.CheckConstraint("octet_length(digest) = 32", name="digest_is_sha256"),
    )

    digest: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = timestamp()
    used_at: Mapped[datetime | None] = timestamp(nullable=True)
