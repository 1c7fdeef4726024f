"""Tenant: a namespace of users with its own lifetimes and signing keys."""
from __future__ import annotations

import re
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column

from app.models.base import Base
from app.models.base import timestamp

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
_SLUG = re.compile(SLUG_PATTERN)


def valid_slug(slug: str) -> bool:
    """The one slug check: a full match (the pattern's `$` alone accepts a trailing newline)."""
    return _SLUG.fullmatch(slug) is not None

MAX_REUSE_INTERVAL = 300
MAX_PASSWORD_LENGTH = 1024
MAX_STEP_UP_MAX_AGE = 86_400


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
        sa.CheckConstraint(
            f"password_min_length BETWEEN 1 AND {MAX_PASSWORD_LENGTH}",
            name="password_min_length_range",
        ),
        sa.CheckConstraint("mfa IN ('optional', 'required')", name="mfa_known"),
        sa.CheckConstraint(f"step_up_max_age BETWEEN 1 AND {MAX_STEP_UP_MAX_AGE}",
                           name="step_up_max_age_range"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(sa.Text, unique=True)
    name: Mapped[str] = mapped_column(sa.Text)
    access_ttl: Mapped[int] = mapped_column(sa.Integer)
    refresh_ttl: Mapped[int] = mapped_column(sa.Integer)
    session_ttl: Mapped[int] = mapped_column(sa.Integer)
    reuse_interval: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[datetime] = timestamp()
    # SPEC §11: characters after NFC; the maximum is fixed (MAX_PASSWORD_LENGTH).
    password_min_length: Mapped[int] = mapped_column(sa.Integer, server_default="8")
    # SPEC §4: browser origins allowed on the token, revoke, userinfo and sessions endpoints.
    cors_origins: Mapped[list[str]] = mapped_column(
        ARRAY(sa.Text), server_default=sa.text("'{}'::text[]")
    )
    # SPEC §13: `required` makes every sign-in use a second factor (enrolled in the flow).
    mfa: Mapped[str] = mapped_column(sa.Text, server_default="optional")
    # The password grant (RFC 6749 §4.3); off: only the challenge flow signs users in.
    password_grant: Mapped[bool] = mapped_column(sa.Boolean, server_default=sa.true())
    # RFC 9470: factor changes need a sign-in at most this many seconds old.
    step_up_max_age: Mapped[int] = mapped_column(sa.Integer, server_default="900")
    # SPEC §13.5: the WebAuthn relying party (NULL: the host of BATON_BASE_URL) and origins.
    webauthn_rp_id: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    webauthn_origins: Mapped[list[str]] = mapped_column(
        ARRAY(sa.Text), server_default=sa.text("'{}'::text[]"))
    # A random key of the tenant's own (never shown): a passwordless start for a username
    # without passkeys answers with decoy allowCredentials derived from it, the same every
    # time, so that the answer tells nobody whether the username exists (docs/design.md).
    webauthn_decoy_key: Mapped[bytes] = mapped_column(sa.LargeBinary, server_default=sa.text(
        "uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())"))
