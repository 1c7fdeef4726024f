"""Sessions seen by their owner: userinfo, listing, deletion, and RFC 7009 revocation.

Every revoking path locks the session row before anything else of its family,
the order rotation uses (docs/design.md), so a revoke racing a refresh can
never leave a live successor behind.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import select

from app.errors import InvalidToken
from app.errors import NotFound
from app.extensions import db
from app.logs import security_event
from app.models import AuthSession
from app.models import User
from app.runtime import runtime
from app.services import events
from app.services.access_tokens import VerifiedAccess
from app.services.access_tokens import verify_access_token
from app.services.database import transaction
from app.services.tenant_cache import TenantInfo
from app.services.tenant_cache import tenant_info
from app.services.tokens import lock_chain
from app.services.tokens import revoke_session


@dataclass(frozen=True)
class SessionInfo:
    id: str
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    current: bool


def _caller(tenant_slug: str, access_token: str, now: datetime) -> VerifiedAccess:
    """Verify a bearer token and require its session to be live (Baton can check; others can't)."""
    caller = verify_access_token(access_token, tenant_slug, runtime().audience, now)
    live = db.session.execute(
        select(AuthSession.id).where(
            AuthSession.id == _uuid(caller.session_id), AuthSession.user_id == caller.user_id,
            AuthSession.revoked_at.is_(None), AuthSession.expires_at > now,
        )
    ).first()
    if live is None:
        raise InvalidToken()
    return caller


def userinfo(tenant_slug: str, access_token: str, now: datetime) -> dict[str, str]:
    """`{"sub", "username", "tenant"}` for a valid access token of a live session."""
    with transaction():
        caller = _caller(tenant_slug, access_token, now)
        username = db.session.execute(
            select(User.username).where(User.id == caller.user_id, User.disabled_at.is_(None))
        ).scalar_one_or_none()
        if username is None:
            raise InvalidToken()
    return {"sub": str(caller.user_id), "username": username, "tenant": tenant_slug}


def list_sessions(tenant_slug: str, access_token: str, now: datetime) -> list[SessionInfo]:
    """The caller's live sessions, newest first, with the caller's own marked current."""
    with transaction():
        caller = _caller(tenant_slug, access_token, now)
        rows = db.session.execute(
            select(AuthSession.id, AuthSession.created_at, AuthSession.last_used_at,
                   AuthSession.expires_at, AuthSession.user_agent)
            .where(AuthSession.user_id == caller.user_id, AuthSession.revoked_at.is_(None),
                   AuthSession.expires_at > now)
            .order_by(AuthSession.created_at.desc())
        ).all()
    return [SessionInfo(str(r.id), r.created_at, r.last_used_at, r.expires_at, r.user_agent,
                        str(r.id) == caller.session_id) for r in rows]


def delete_session(tenant_slug: str, access_token: str, session_id: str, now: datetime) -> None:
    """Revoke one of the caller's sessions; NotFound for another user's or an unknown one."""
    target = _uuid(session_id)
    with transaction():
        caller = _caller(tenant_slug, access_token, now)
        locked = db.session.execute(
            select(AuthSession.id)
            .where(AuthSession.id == target, AuthSession.user_id == caller.user_id,
                   AuthSession.revoked_at.is_(None))
            .with_for_update()
        ).first() if target else None
        if locked is None or target is None:
            raise NotFound("No such session.")
        revoke_session(target, now, "session_delete")
        events.record_events(events.session_revoked(
            caller.tenant_id, [target], "session_delete", events.user_actor(caller.user_id), now,
            user_id=str(caller.user_id)), now)
    security_event("session_revoked", tenant=tenant_slug, session_id=target,
                   reason="session_delete")


def revoke(tenant_slug: str, token: str, hint: str | None, now: datetime) -> None:
    """RFC 7009: revoke the session of a refresh or access token; unknown tokens are ignored."""
    order = ("access_token", "refresh_token") if hint == "access_token" else (
        "refresh_token", "access_token")
    session_id = kind = None
    with transaction():
        tenant = tenant_info(tenant_slug)
        if tenant is None:
            raise NotFound("Unknown tenant.")
        for kind in order:
            session_id = _REVOKERS[kind](tenant, tenant_slug, token, now)
            if session_id is not None:
                break
    if session_id is not None:  # logged once the revocation is committed
        security_event("session_revoked", tenant=tenant_slug, session_id=session_id,
                       reason="logout", via=kind)


def _revoke_by_refresh_token(tenant: TenantInfo, tenant_slug: str, token: str,
                             now: datetime) -> uuid.UUID | None:
    chain = lock_chain(tenant.id, token)  # session row, then token row: rotation's order
    if chain is None:
        return None
    if revoke_session(chain.session_id, now, "logout"):
        _record_logout(tenant.id, chain.session_id, chain.user_id, now)
    return chain.session_id


def _record_logout(tenant_id: int, session_id: uuid.UUID, user_id: int, now: datetime) -> None:
    # RFC 7009: whoever holds the session's token is acting for its user.
    events.record_events(events.session_revoked(
        tenant_id, [session_id], "logout", events.user_actor(user_id), now,
        user_id=str(user_id)), now)


def _revoke_by_access_token(tenant: TenantInfo, tenant_slug: str, token: str,
                            now: datetime) -> uuid.UUID | None:
    if token.count(".") != 2:
        return None
    try:
        caller = verify_access_token(token, tenant_slug, runtime().audience, now)
    except InvalidToken:
        return None
    session_id = _uuid(caller.session_id)
    locked = db.session.execute(
        select(AuthSession.id)
        .where(AuthSession.id == session_id, AuthSession.tenant_id == tenant.id)
        .with_for_update()
    ).first()
    if locked is None or session_id is None:
        return None
    if revoke_session(session_id, now, "logout"):
        _record_logout(tenant.id, session_id, caller.user_id, now)
    return session_id


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
    """Revoke one session of the tenant by id (admin API); NotFound if unknown or foreign."""
    target = _uuid(session_id)
    with transaction():
        tenant = tenant_info(tenant_slug)
        locked = db.session.execute(
            select(AuthSession.id, AuthSession.user_id)  # the session row: rotation's first lock
            .where(AuthSession.id == target, AuthSession.tenant_id == tenant.id)
            .with_for_update()
        ).first() if target and tenant else None
        if locked is None or target is None or tenant is None:
            raise NotFound("No such session.")
        revoked = revoke_session(target, now, "admin")
        if revoked:
            events.record_events(events.session_revoked(
                tenant.id, [target], "admin", actor, now, user_id=str(locked.user_id)), now)
    if revoked:
        security_event("session_revoked", tenant=tenant_slug, session_id=target, reason="admin")


def revoke_all_for_user(user_id: int, now: datetime, reason: str,
                        actor: events.Actor = events.CLI) -> int:
    """Revoke every live session of a user, inside the caller's transaction.

    The session rows are locked in id order first (rotation's first lock), so a
    refresh of any of them either finishes before or sees the revocation. Each
    revoked session gets its session.revoked event in the same transaction.
    """
    rows = db.session.execute(
        select(AuthSession.id, AuthSession.tenant_id)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .order_by(AuthSession.id)
        .with_for_update()
    ).all()
    ids = [row.id for row in rows]
    if ids:
        db.session.execute(
            sa.update(AuthSession)
            .where(AuthSession.id.in_(ids), AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
        )
        events.record_events(events.session_revoked(
            rows[0].tenant_id, ids, reason, actor, now, user_id=str(user_id)), now)
    return len(ids)
