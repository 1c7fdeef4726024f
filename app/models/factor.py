"""Second factors (SPEC §13.1): a user's TOTP generators and passkeys, and recovery codes."""
from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import UserOwned
from app.models.base import timestamp

FACTOR_TYPES = ("totp", "passkey")
MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn §4: a credential ID is at most 1023 bytes
MAX_SIGN_COUNT = 2**32 - 1  # WebAuthn §6.1: an unsigned 32-bit counter


class Factor(UserOwned, Base):
    """One second factor. A TOTP factor is pending (not usable at sign-in) until confirmed;
    a passkey is confirmed when it is registered (its registration is its proof)."""

    __tablename__ = "factors"
    __table_args__ = (
        sa.CheckConstraint("type IN ('totp', 'passkey')", name="type_known"),
        sa.CheckConstraint("type <> 'totp' OR secret_encrypted IS NOT NULL",
                           name="totp_has_secret"),
        sa.CheckConstraint("type <> 'passkey' OR (credential_id IS NOT NULL AND public_key IS "
                           "NOT NULL AND sign_count IS NOT NULL AND confirmed_at IS NOT NULL)",
                           name="passkey_has_credential"),
        sa.CheckConstraint(f"octet_length(credential_id) BETWEEN 1 AND {MAX_CREDENTIAL_ID_BYTES}",
                           name="credential_id_length"),
        sa.CheckConstraint(f"sign_count BETWEEN 0 AND {MAX_SIGN_COUNT}", name="sign_count_range"),
        # A discoverable passkey (no username) is found by its credential id in the tenant.
        sa.UniqueConstraint("tenant_id", "credential_id"),
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
    # Passkey (WebAuthn, SPEC §13.5): the credential id, its COSE public key as the
    # authenticator sent it, the last signature counter seen (a counter that goes backwards
    # suggests a cloned authenticator) and the transports the browser reported (hints for
    # allowCredentials). A public key is no secret: nothing here is encrypted.
    credential_id: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    public_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
    sign_count: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True)
    transports: Mapped[list[str] | None] = mapped_column(ARRAY(sa.Text), nullable=True)


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


class PasskeyRegistration(UserOwned, Base):
    """A registration ceremony in progress (SPEC §13.5): the challenge Baton sent with the
    creation options, stored only as its SHA-256 digest, bound to the tenant and the user,
    single use (the registration deletes it, right or wrong) and good for 300 s."""

    __tablename__ = "passkey_registrations"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "digest"),
        sa.CheckConstraint("octet_length(digest) = 32", name="digest_is_sha256"),
        sa.Index("ix_passkey_registrations_user_id", "user_id"),
        sa.Index("ix_passkey_registrations_expires_at", "expires_at"),
    )

    digest: Mapped[bytes] = mapped_column(sa.LargeBinary)
    created_at: Mapped[datetime] = timestamp()
    expires_at: Mapped[datetime] = timestamp()
