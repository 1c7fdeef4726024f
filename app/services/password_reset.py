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

from flask import current_app
from itsdangerous import BadData
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import select

from app.errors import InvalidGrant
from app.errors import NotFound
from app.extensions import db
from app.logs import security_event
from app.models import Tenant
from app.models import User
from app.services import events
from app.services.database import transaction
from app.services.sessions import revoke_all_for_user
from app.services.users import UserRef
from app.services.users import get_user
from app.services.users import hash_new_password

log = logging.getLogger(__name__)
SALT = "baton.password-reset.v1"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _fingerprint(password_hash: str) -> str:
    # Binds the token to the current hash without putting the hash in a readable token.
    return hashlib.sha256(b"baton-reset:" + password_hash.encode()).hexdigest()[:32]


def issue_reset_token(tenant_slug: str, who: UserRef) -> str:
    """A reset token for the user (`flask users reset-link` and the admin API)."""
    user_id = get_user(tenant_slug, who).id
    with transaction():
        row = db.session.execute(
            select(User.id, User.tenant_id, User.password_hash).where(User.id == user_id)
        ).one_or_none()
        if row is None:  # deleted in between
            raise NotFound(f"no user {who!r} in tenant {tenant_slug!r}")
    return _serializer().dumps({"t": row.tenant_id, "u": row.id,
                                "h": _fingerprint(row.password_hash)})


def reset_password(tenant_slug: str, token: str, new_password: str, now: datetime) -> None:
    """Set the password named by a valid reset token and revoke every session of the user."""
    try:
        claims = _serializer().loads(token, max_age=current_app.config["RESET_TOKEN_TTL_S"])
        tenant_id, user_id, fingerprint = int(claims["t"]), int(claims["u"]), str(claims["h"])
    except (BadData, KeyError, TypeError, ValueError):
        log.info("password reset rejected", extra={"event": "password_reset_rejected",
                                                   "tenant": tenant_slug, "reason": "bad token"})
        raise InvalidGrant() from None
    new_hash = hash_new_password(tenant_slug, new_password)  # policy, then the slow hash
    with transaction():
        user = db.session.execute(
            select(User).join(Tenant, Tenant.id == User.tenant_id)
            .where(User.id == user_id, User.tenant_id == tenant_id, Tenant.slug == tenant_slug)
            .with_for_update(of=User)
        ).scalar_one_or_none()
        valid = user is not None and hmac.compare_digest(_fingerprint(user.password_hash),
                                                         fingerprint)
        if valid:
            user.password_hash = new_hash
            actor = events.user_actor(user_id)  # the holder of the user's reset token
            events.record_event(events.USER_PASSWORD_CHANGED, tenant_id, actor,
                                {"user_id": str(user_id), "via": "reset_token"}, now)
            revoked = revoke_all_for_user(user_id, now, "password_change", actor)
    if not valid:
        log.info("password reset rejected", extra={"event": "password_reset_rejected",
                                                   "tenant": tenant_slug, "user_id": user_id,
                                                   "reason": "used or foreign"})
        raise InvalidGrant()
    security_event("password_reset", tenant=tenant_slug, user_id=user_id,
                   sessions_revoked=revoked)
