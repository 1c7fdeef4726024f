"""User of one tenant; the password is stored only as an argon2id hash."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp

MAX_USERNAME_LENGTH = 150


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "username"),
        sa.CheckConstraint(
            f"length(username) BETWEEN 1 AND {MAX_USERNAME_LENGTH}", name="username_length"
        ),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE")
    )
    username: Mapped[str] = mapped_column(sa.Text)
    password_hash: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = timestamp()
    disabled_at: Mapped[datetime | None] = timestamp(nullable=True)
    # WebAuthn user handle (SPEC §13.5): 32 random bytes, made with the user's first passkey
    # options and kept, so every passkey of the user carries the same one (an authenticator
    # then replaces, rather than piles up, a user's credentials). Never the username.
    webauthn_user_handle: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    # Counts the user's revoke-alls (disable, password change, logout everywhere, the admin's
    # factor removal): a sign-in in progress (an auth_session, an unredeemed authorization
    # code) is bound to the value it began under, so none outlives a revoke-all.
    sign_in_epoch: Mapped[int] = mapped_column(sa.Integer, server_default="0")
