"""The first-party sign-in flow (SPEC §13.3): challenge sessions and authorization codes.

Both are opaque random strings handed to the client and stored only as SHA-256 digests,
looked up by (tenant, digest), and locked while they are answered or redeemed: the row is
what serializes parallel requests, so each yields at most one result.
"""
from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import UserOwned
from app.models.base import timestamp

CHALLENGE_STATES = ("open", "used", "ended")


class ChallengeSession(Base):
    """An `auth_session`: a sign-in in progress, waiting for its second factor."""

    __tablename__ = "challenge_sessions"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "digest"),
        sa.CheckConstraint("octet_length(digest) = 32", name="digest_is_sha256"),
        sa.CheckConstraint("state IN ('open', 'used', 'ended')", name="state_known"),
        sa.CheckConstraint("octet_length(webauthn_challenge) = 32",
                           name="webauthn_challenge_is_sha256"),
        sa.Index("ix_challenge_sessions_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        sa.BigInteger, sa.ForeignKey("tenants.id", ondelete="CASCADE"))
    # NULL only for a passwordless start (SPEC §13.5) without a username (`discoverable`),
    # or with a username that has no passkey or no user (no answer can be right).
    user_id: Mapped[int | None] = mapped_column(
        sa.BigInteger, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    digest: Mapped[bytes] = mapped_column(sa.LargeBinary)
    code_challenge: Mapped[str] = mapped_column(sa.Text)
    client_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    amr: Mapped[list[str]] = mapped_column(ARRAY(sa.Text))  # what is proven so far
    state: Mapped[str] = mapped_column(sa.Text, server_default="open")
    attempts: Mapped[int] = mapped_column(sa.Integer, server_default="0")  # wrong answers
    created_at: Mapped[datetime] = timestamp()
    expires_at: Mapped[datetime] = timestamp()
    # The user's password hash and revoke-all count (users.sign_in_epoch), fingerprinted when
    # the password was proven (signin.codes.sign_in_fingerprint): a password change, a
    # revoke-all or a disable while the challenge is open ends it. NULL when no password was
    # part of the start (a passkey alone).
    password_fingerprint: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    # A passwordless start: the address counter (network) and window it was counted in, given
    # back to that counter when a passkey completes it, whoever sends the answer.
    counted_address: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    counted_window: Mapped[datetime | None] = timestamp(nullable=True)
    # mfa=required: the (pending) TOTP factor being enrolled inside this flow. No foreign
    # key: deleting a factor must not lock challenge rows (their answers lock the factor).
    enroll_factor_id: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    # SPEC §13.5: the SHA-256 digest of the WebAuthn challenge sent with this auth_session's
    # request options (NULL: no passkey may answer). Spent with the auth_session itself.
    webauthn_challenge: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    # A passwordless start without a username: any passkey of the tenant may answer.
    discoverable: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.false())


class AuthorizationCode(UserOwned, Base):
    """A code for the `authorization_code` grant (PKCE S256), single use, 60 s."""

    __tablename__ = "authorization_codes"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "digest"),
        sa.CheckConstraint("octet_length(digest) = 32", name="digest_is_sha256"),
        sa.Index("ix_authorization_codes_expires_at", "expires_at"),
    )

    digest: Mapped[bytes] = mapped_column(sa.LargeBinary)
    code_challenge: Mapped[str] = mapped_column(sa.Text)
    client_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    amr: Mapped[list[str]] = mapped_column(ARRAY(sa.Text))
    auth_time: Mapped[datetime] = timestamp()
    # The user's password hash and revoke-all count, fingerprinted when the code was issued:
    # a password change or a revoke-all in the code's minute makes it unredeemable.
    password_fingerprint: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = timestamp()
    expires_at: Mapped[datetime] = timestamp()
    used_at: Mapped[datetime | None] = timestamp(nullable=True)
    # The session its redemption started: revoked if the code is presented again. No foreign
    # key: purging a session must not lock code rows (a replay locks the code, then the
    # session).
    session_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
