"""Token introspection (RFC 7662; SPEC §10): is this token good right now?

Unlike a JWKS check, an access token is active only while its session is live too, so a
logout or an admin revocation is seen at once. A refresh token is active only while it is
its session's current token. Read-only: no lock, nothing written.
"""
from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select

from app.crypto import token_digest
from app.extensions import db
from app.models import AuthSession
from app.models import RefreshToken
from app.models import User
from app.runtime import runtime
from app.services.errors import AccessDenied
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.tokens.access_tokens import verify_access_token
from app.services.unit_of_work import transaction

INACTIVE = {"active": False}
ACCESS_CLAIMS = ("iss", "aud", "iat", "exp", "jti", "auth_time", "amr")


def introspect(tenant_slug: str, token: str, hint: str | None, *,
               now: datetime) -> dict[str, object]:
    """RFC 7662 §2.2 response for a token of the tenant; `{"active": false}` for anything else."""
    kinds = [_access, _refresh] if hint == "access_token" else [_refresh, _access]
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        for kind in kinds:
            answer = kind(tenant, token, now)
            if answer is not None:
                return answer
    return dict(INACTIVE)


def _live_session_user(tenant_id: int, session_id: uuid.UUID, user_id: int,
                       now: datetime) -> str | None:
    """The username if the session is live and its user enabled, else None."""
    return db.session.execute(
        select(User.username).join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.id == session_id, AuthSession.tenant_id == tenant_id,
               AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None),
               AuthSession.expires_at > now, User.disabled_at.is_(None))
    ).scalar_one_or_none()


def _access(tenant: TenantInfo, token: str, now: datetime) -> dict[str, object] | None:
    tenant_id = tenant.id
    if token.count(".") != 2:
        return None
    try:
        verified = verify_access_token(token, tenant, runtime().audience, now)
        session_id = uuid.UUID(verified.session_id)
    except (AccessDenied, ValueError):
        return None
    if verified.tenant_id != tenant_id:
        return None
    username = _live_session_user(tenant_id, session_id, verified.user_id, now)
    if username is None:
        return None
    claims = verified.claims
    return {"active": True, "token_type": "access_token", "sub": claims["sub"],
            "username": username, "tid": claims["tid"], "sid": claims["sid"],
            **{name: claims[name] for name in ACCESS_CLAIMS if name in claims}}


def _refresh(tenant: TenantInfo, token: str, now: datetime) -> dict[str, object] | None:
    tenant_id = tenant.id
    row = db.session.execute(
        select(RefreshToken.session_id, RefreshToken.created_at, RefreshToken.expires_at,
               AuthSession.user_id, AuthSession.auth_time, AuthSession.amr)
        .join(AuthSession, (AuthSession.id == RefreshToken.session_id)
              & (AuthSession.current_token_id == RefreshToken.id))  # only the current token
        .where(RefreshToken.tenant_id == tenant_id,
               RefreshToken.digest == token_digest(token), RefreshToken.expires_at > now)
    ).one_or_none()
    if row is None:
        return None
    username = _live_session_user(tenant_id, row.session_id, row.user_id, now)
    if username is None:
        return None
    return {"active": True, "token_type": "refresh_token", "sub": str(row.user_id),
            "username": username, "tid": tenant_id, "sid": str(row.session_id),
            "iss": tenant.issuer, "iat": int(row.created_at.timestamp()),
            "exp": int(row.expires_at.timestamp()),
            "auth_time": int(row.auth_time.timestamp()), "amr": list(row.amr)}
