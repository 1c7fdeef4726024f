"""Sessions seen by their owner: userinfo, listing, deletion, and RFC 7009 revocation.

Every lock and revocation goes through app.services.family (the locking protocol).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.extensions import db
from app.logs import security_event
from app.models import AuthSession
from app.models import User
from app.runtime import runtime
from app.services.audit import events
from app.services.errors import AccessDenied
from app.services.errors import SessionNotFound
from app.services.errors import StepUpRequired
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.tokens import family
from app.services.tokens.access_tokens import VerifiedAccess
from app.services.tokens.access_tokens import verify_access_token
from app.services.unit_of_work import transaction


@dataclass(frozen=True)
class SessionInfo:
    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    current: bool
    amr: tuple[str, ...] = ("pwd",)  # how the session signed in (SPEC §13.4)
    client_id: str | None = None
    auth_time: datetime | None = None


def live_sessions(user_id: int, now: datetime, current: str | None = None) -> list[SessionInfo]:
    """The user's live sessions, newest first; `current` marks the caller's own (inside the
    caller's transaction)."""
    rows = db.session.execute(
        select(AuthSession.id, AuthSession.created_at, AuthSession.last_used_at,
               AuthSession.expires_at, AuthSession.user_agent, AuthSession.amr,
               AuthSession.client_id, AuthSession.auth_time)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None),
               AuthSession.expires_at > now)
        .order_by(AuthSession.created_at.desc())
    ).all()
    return [SessionInfo(str(r.id), r.created_at, r.last_used_at, r.expires_at, r.user_agent,
                        str(r.id) == current, tuple(r.amr), r.client_id, r.auth_time)
            for r in rows]


def authenticated_caller(tenant: TenantInfo, access_token: str,
                         now: datetime) -> VerifiedAccess:
    """Verify a bearer token and require its session to be live (Baton can check; others can't).

    Inside the caller's transaction."""
    caller = verified_caller(tenant, access_token, now)
    require_live_session(caller, now)
    return caller


def verified_caller(tenant: TenantInfo, access_token: str, now: datetime) -> VerifiedAccess:
    """A bearer token's claims, verified (signature, issuer, audience, expiry); no database."""
    return verify_access_token(access_token, tenant, runtime().audience, now)


def require_live_session(caller: VerifiedAccess, now: datetime) -> None:
    """The caller's session is live (not revoked, not past its lifetime), else AccessDenied.
    Read with the statement's snapshot: after a lock, it sees what the lock waited for."""
    live = db.session.execute(
        select(AuthSession.id).where(
            AuthSession.id == _uuid(caller.session_id), AuthSession.user_id == caller.user_id,
            AuthSession.revoked_at.is_(None), AuthSession.expires_at > now,
        )
    ).first()
    if live is None:
        raise AccessDenied()


def require_recent_sign_in(caller: VerifiedAccess, tenant: TenantInfo, now: datetime) -> None:
    """RFC 9470 step-up: the caller's sign-in (`auth_time`) must be at most the tenant's
    step_up_max_age old, else StepUpRequired (401 insufficient_user_authentication)."""
    max_age = tenant.step_up_max_age
    if caller.auth_time is None or now.timestamp() - caller.auth_time > max_age:
        raise StepUpRequired(max_age)


def userinfo(tenant_slug: str, access_token: str, now: datetime) -> dict[str, str]:
    """`{"sub", "username", "tenant"}` for a valid access token of a live session."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller = authenticated_caller(tenant, access_token, now)
        username = db.session.execute(
            select(User.username).where(User.id == caller.user_id, User.disabled_at.is_(None))
        ).scalar_one_or_none()
        if username is None:
            raise AccessDenied()
    return {"sub": str(caller.user_id), "username": username, "tenant": tenant_slug}


def list_sessions(tenant_slug: str, access_token: str, now: datetime) -> list[SessionInfo]:
    """The caller's live sessions, newest first, with the caller's own marked current."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller = authenticated_caller(tenant, access_token, now)
        return live_sessions(caller.user_id, now, caller.session_id)


def delete_session(tenant_slug: str, access_token: str, session_id: str, now: datetime) -> None:
    """Revoke one of the caller's sessions; SessionNotFound for another user's or an unknown one."""
    target = _uuid(session_id)
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller = authenticated_caller(tenant, access_token, now)
        owner = family.lock_session(tenant.id, target, caller.user_id, live=True)
        if target is None or owner is None:
            raise SessionNotFound()
        family.revoke_locked_session(tenant.id, target, owner, now, "session_delete",
                                     events.user_actor(caller.user_id))
    security_event("session_revoked", tenant=tenant_slug, session_id=target,
                   reason="session_delete")


def revoke(tenant_slug: str, token: str, hint: str | None, now: datetime) -> None:
    """RFC 7009: revoke the session of a refresh or access token; unknown tokens are ignored."""
    order = ("access_token", "refresh_token") if hint == "access_token" else (
        "refresh_token", "access_token")
    found = kind = None
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        for kind in order:
            found = _REVOKERS[kind](tenant, token, now)
            if found is not None:
                break
    if found is not None and found[1]:  # a real revocation, logged once it is committed
        security_event("session_revoked", tenant=tenant_slug, session_id=found[0],
                       reason="logout", via=kind)


# What a revoker found: the token's session, and whether this call revoked it (False: it
# was revoked already). None: not a token of this kind of the tenant.
Revoked = tuple[uuid.UUID, bool] | None


def _revoke_by_refresh_token(tenant: TenantInfo, token: str, now: datetime) -> Revoked:
    chain = family.lock_token(tenant.id, token)  # session row, then token row: rotation's order
    if chain is None:
        return None
    # RFC 7009: whoever holds the session's token is acting for its user.
    return chain.session_id, family.revoke_locked_session(
        tenant.id, chain.session_id, chain.user_id, now, "logout",
        events.user_actor(chain.user_id))


def _revoke_by_access_token(tenant: TenantInfo, token: str, now: datetime) -> Revoked:
    if token.count(".") != 2:
        return None
    try:
        caller = verify_access_token(token, tenant, runtime().audience, now)
    except AccessDenied:
        return None
    session_id = _uuid(caller.session_id)
    if session_id is None or family.lock_session(tenant.id, session_id) is None:
        return None
    return session_id, family.revoke_locked_session(
        tenant.id, session_id, caller.user_id, now, "logout", events.user_actor(caller.user_id))


_REVOKERS = {
    "refresh_token": _revoke_by_refresh_token,
    "access_token": _revoke_by_access_token,
}


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def admin_delete_session(tenant_slug: str, session_id: str, now: datetime,
                         actor: events.Actor = events.CLI) -> None:
    """Revoke one session of the tenant by id (admin API); SessionNotFound if unknown or foreign."""
    target = _uuid(session_id)
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        owner = family.lock_session(tenant.id, target)
        if target is None or owner is None:
            raise SessionNotFound()
        revoked = family.revoke_locked_session(tenant.id, target, owner, now, "admin", actor)
    if revoked:
        security_event("session_revoked", tenant=tenant_slug, session_id=target, reason="admin")
