"""Password reset tokens (SPEC §4.2): signed, time-limited, single-use.

The token is an itsdangerous signature over (tenant id, user id, a fingerprint
of the current password hash), with a purpose-specific salt. Setting a new
password changes the hash, so the fingerprint no longer matches: the token
dies after one use without any server-side state.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadData
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from app.extensions import db
from app.logs import security_event
from app.models import User
from app.services.accounts.credentials import UserRef
from app.services.accounts.credentials import hash_new_password
from app.services.accounts.credentials import user_clause
from app.services.audit import events
from app.services.errors import InvalidCredentials
from app.services.errors import UserNotFound
from app.services.tenancy.lookup import lookup_tenant
from app.services.tokens import family
from app.services.tokens.family import LockedUser
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)
SALT = "baton.password-reset.v1"


def _serializer() -> URLSafeTimedSerializer:
    # itsdangerous signs with the last secret and accepts every one of them (fallbacks).
    config = current_app.config
    secrets = [*reversed(config.get("SECRET_KEY_FALLBACKS") or []), config["SECRET_KEY"]]
    return URLSafeTimedSerializer(secrets, salt=SALT)


def _fingerprint(password_hash: str) -> str:
    # Binds the token to the current hash without putting the hash in a readable token.
    return hashlib.sha256(b"baton-reset:" + password_hash.encode()).hexdigest()[:32]


def issue_reset_token(tenant_slug: str, who: UserRef) -> str:
    """A reset token for the user (`flask users reset-link` and the admin API)."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        row = db.session.execute(
            select(User.id, User.tenant_id, User.password_hash)
            .where(user_clause(tenant.id, who))
        ).one_or_none()
    if row is None:
        raise UserNotFound(tenant_slug, who)
    return _serializer().dumps({"t": row.tenant_id, "u": row.id,
                                "h": _fingerprint(row.password_hash)})


def _usable(user: LockedUser | None, fingerprint: str) -> bool:
    """Is the token still unused (same password hash) and its user enabled?"""
    if user is None or user.disabled_at is not None:
        return False
    return hmac.compare_digest(_fingerprint(user.password_hash), fingerprint)


def _read_user(tenant_id: int, user_id: int) -> LockedUser | None:
    row = db.session.execute(
        select(User.id, User.tenant_id, User.disabled_at, User.password_hash)
        .where(User.id == user_id, User.tenant_id == tenant_id)
    ).one_or_none()
    return None if row is None else LockedUser(*row)


def _rejected(tenant_slug: str, user_id: int | None, reason: str) -> InvalidCredentials:
    log.info("password reset rejected", extra={"event": "password_reset_rejected",
                                               "tenant": tenant_slug, "user_id": user_id,
                                               "reason": reason})
    return InvalidCredentials()  # one answer for a bad, spent or foreign token and a disabled user


def reset_password(tenant_slug: str, token: str, new_password: str, now: datetime) -> None:
    """Set the password named by a valid reset token and revoke every session of the user."""
    try:
        claims = _serializer().loads(token, max_age=current_app.config["RESET_TOKEN_TTL_S"])
        tenant_id, user_id, fingerprint = int(claims["t"]), int(claims["u"]), str(claims["h"])
    except (BadData, KeyError, TypeError, ValueError):
        raise _rejected(tenant_slug, None, "bad token") from None
    # The token is checked before the (deliberately slow) hash: a spent token, or one of a
    # disabled user, costs no CPU however often it is sent.
    # A token of another tenant names no user here (the ids differ): the same rejection.
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        usable = tenant.id == tenant_id and _usable(_read_user(tenant_id, user_id), fingerprint)
    if not usable:
        raise _rejected(tenant_slug, user_id, "used, foreign or disabled")
    new_hash = hash_new_password(tenant_slug, new_password)  # policy, then the slow hash
    with transaction():
        lookup_tenant(tenant_slug)
        # Checked again under the lock: a concurrent reset or disable may have won meanwhile.
        usable = _usable(family.lock_user(tenant_id, User.id == user_id), fingerprint)
        if usable:
            db.session.execute(sa.update(User).where(User.id == user_id)
                               .values(password_hash=new_hash))
            actor = events.user_actor(user_id)  # the holder of the user's reset token
            events.record_event(events.USER_PASSWORD_CHANGED, tenant_id, actor,
                                {"user_id": str(user_id), "via": "reset_token"}, now)
            revoked = family.revoke_all_for_user(tenant_id, user_id, now, "password_change",
                                                 actor)
    if not usable:
        raise _rejected(tenant_slug, user_id, "used, foreign or disabled")
    security_event("password_reset", tenant=tenant_slug, user_id=user_id,
                   sessions_revoked=revoked)
