"""Users: creation, lookup, listing, disable/enable, passwords and their sessions (SPEC §7, §9).

One function per operation, called alike by the CLI (which names users by username) and
the admin API (which names them by id). Every change that revokes locks the user row,
then the user's session rows in id order (rotation's first lock, docs/design.md).
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.errors import Conflict
from app.errors import InvalidRequest
from app.errors import NotFound
from app.extensions import db
from app.logs import security_event
from app.models import AuthSession
from app.models import User
from app.models.tenant import MAX_PASSWORD_LENGTH
from app.models.user import MAX_USERNAME_LENGTH
from app.runtime import runtime
from app.services import events
from app.services.accounts import check_password
from app.services.accounts import normalize_username
from app.services.database import transaction
from app.services.sessions import SessionInfo
from app.services.sessions import revoke_all_for_user
from app.services.tenant_cache import TenantInfo
from app.services.tenant_cache import tenant_info

UserRef = str | int  # a username (CLI) or a user id (admin API)


@dataclass(frozen=True)
class UserView:
    """What the admin API shows of a user (SPEC §9 user object)."""

    id: int
    username: str
    created_at: datetime
    disabled_at: datetime | None


_VIEW_COLUMNS = (User.id, User.username, User.created_at, User.disabled_at)


def validate_credentials(username: str, password: str) -> None:
    """Raise InvalidRequest for a login whose username or password Baton could never store."""
    if not username or len(username) > MAX_USERNAME_LENGTH:
        raise InvalidRequest(f"username must be 1-{MAX_USERNAME_LENGTH} characters")
    if username != username.strip() or "\x00" in username:
        raise InvalidRequest("username must not contain surrounding spaces or NUL")
    if not password:
        raise InvalidRequest("password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH or "\x00" in password:
        raise InvalidRequest(f"password must be at most {MAX_PASSWORD_LENGTH} characters, no NUL")


def _tenant(tenant_slug: str) -> TenantInfo:
    tenant = tenant_info(tenant_slug)
    if tenant is None:
        raise NotFound(f"unknown tenant {tenant_slug!r}")
    return tenant


def _is(tenant_id: int, who: UserRef):
    """The WHERE clause naming one user of the tenant."""
    if isinstance(who, int):
        return sa.and_(User.tenant_id == tenant_id, User.id == who)
    return sa.and_(User.tenant_id == tenant_id, User.username == normalize_username(who))


def _missing(tenant_slug: str, who: UserRef) -> NotFound:
    return NotFound(f"no user {who!r} in tenant {tenant_slug!r}")


def hash_new_password(tenant_slug: str, password: str) -> str:
    """Apply the tenant's password policy, then hash (slow: call outside any lock)."""
    with transaction():
        min_length = _tenant(tenant_slug).password_min_length
    check_password(password, min_length)
    return runtime().passwords.hash(password)


def create_user(tenant_slug: str, username: str, password: str, now: datetime,
                actor: events.Actor = events.CLI) -> UserView:
    """Create a user; Conflict if the normalised username exists in the tenant."""
    name = normalize_username(username)
    password_hash = hash_new_password(tenant_slug, password)
    try:
        with transaction():
            tenant = _tenant(tenant_slug)
            row = db.session.execute(
                sa.insert(User).values(tenant_id=tenant.id, username=name,
                                       password_hash=password_hash, created_at=now)
                .returning(*_VIEW_COLUMNS)
            ).one()
            events.record_event(events.USER_CREATED, tenant.id, actor,
                                {"user_id": str(row.id)}, now)
    except IntegrityError as exc:
        if getattr(exc.orig, "pgcode", None) != "23505":  # unique_violation
            raise
        raise Conflict(f"user {name!r} already exists in tenant {tenant_slug!r}") from None
    security_event("user_created", tenant=tenant_slug, user_id=row.id)
    return UserView(*row)


def user_exists(tenant_slug: str, username: str) -> bool:
    return find_user(tenant_slug, username) is not None


def find_user(tenant_slug: str, username: str) -> UserView | None:
    """The user with this username (normalised as at login), or None."""
    with transaction():
        row = db.session.execute(
            select(*_VIEW_COLUMNS).where(_is(_tenant(tenant_slug).id, username))
        ).one_or_none()
    return UserView(*row) if row else None


def get_user(tenant_slug: str, who: UserRef) -> UserView:
    with transaction():
        row = db.session.execute(
            select(*_VIEW_COLUMNS).where(_is(_tenant(tenant_slug).id, who))
        ).one_or_none()
    if row is None:
        raise _missing(tenant_slug, who)
    return UserView(*row)


def encode_cursor(username: str) -> str:
    return base64.urlsafe_b64encode(username.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    malformed = InvalidRequest("cursor is malformed; use next_cursor of the previous page")
    try:
        padded = (cursor + "=" * (-len(cursor) % 4)).encode("ascii")
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeError):
        raise malformed from None
    # No username holds NUL (PostgreSQL text cannot; the driver refuses it): a forged cursor.
    if "\x00" in after:
        raise malformed
    return after


def list_users(tenant_slug: str, limit: int,
               cursor: str | None) -> tuple[list[UserView], str | None]:
    """One page of users in username order, after `cursor`; (users, next cursor or None).

    Keyset pagination on the unique (tenant, username) index: a user inserted while a client
    pages never shifts the others, so none is skipped or repeated.
    """
    after = decode_cursor(cursor) if cursor else None
    with transaction():
        query = select(*_VIEW_COLUMNS).where(User.tenant_id == _tenant(tenant_slug).id)
        if after is not None:
            query = query.where(User.username > after)
        rows = db.session.execute(query.order_by(User.username).limit(limit + 1)).all()
    page = [UserView(*row) for row in rows[:limit]]
    return page, (encode_cursor(page[-1].username) if len(rows) > limit else None)


def _lock_user(tenant_slug: str, who: UserRef) -> tuple[int, int, datetime | None]:
    """Lock the user row (first in the revoke order); (id, tenant id, disabled_at) or NotFound."""
    tenant_id = _tenant(tenant_slug).id
    row = db.session.execute(
        select(User.id, User.disabled_at).where(_is(tenant_id, who)).with_for_update()
    ).one_or_none()
    if row is None:
        raise _missing(tenant_slug, who)
    return row.id, tenant_id, row.disabled_at


def set_disabled(tenant_slug: str, who: UserRef, disabled: bool, now: datetime,
                 actor: events.Actor = events.CLI) -> tuple[UserView, int]:
    """Disable (revoking every session in the same transaction) or enable a user."""
    revoked = 0
    with transaction():
        user_id, tenant_id, disabled_at = _lock_user(tenant_slug, who)
        data = {"user_id": str(user_id)}
        if disabled:
            if disabled_at is None:
                db.session.execute(sa.update(User).where(User.id == user_id)
                                   .values(disabled_at=now))
                events.record_event(events.USER_DISABLED, tenant_id, actor, data, now)
            revoked = revoke_all_for_user(user_id, now, "user_disabled", actor)
        elif disabled_at is not None:
            db.session.execute(sa.update(User).where(User.id == user_id).values(disabled_at=None))
            events.record_event(events.USER_ENABLED, tenant_id, actor, data, now)
        row = db.session.execute(select(*_VIEW_COLUMNS).where(User.id == user_id)).one()
    security_event("user_disabled" if disabled else "user_enabled", tenant=tenant_slug,
                   user_id=user_id, sessions_revoked=revoked)
    return UserView(*row), revoked


def disable_user(tenant_slug: str, who: UserRef, now: datetime,
                 actor: events.Actor = events.CLI) -> int:
    """Disable a user and revoke all of their sessions; returns how many were revoked."""
    return set_disabled(tenant_slug, who, True, now, actor)[1]


def enable_user(tenant_slug: str, who: UserRef, now: datetime,
                actor: events.Actor = events.CLI) -> None:
    set_disabled(tenant_slug, who, False, now, actor)


def set_password(tenant_slug: str, who: UserRef, password: str, now: datetime,
                 actor: events.Actor = events.CLI) -> int:
    """Set a new password and revoke all of the user's sessions; returns how many."""
    password_hash = hash_new_password(tenant_slug, password)
    with transaction():
        user_id, tenant_id, _ = _lock_user(tenant_slug, who)
        db.session.execute(sa.update(User).where(User.id == user_id)
                           .values(password_hash=password_hash))
        events.record_event(events.USER_PASSWORD_CHANGED, tenant_id, actor,
                            {"user_id": str(user_id)}, now)
        revoked = revoke_all_for_user(user_id, now, "password_change", actor)
    security_event("password_set", tenant=tenant_slug, user_id=user_id, sessions_revoked=revoked)
    return revoked


def logout_everywhere(tenant_slug: str, who: UserRef, now: datetime,
                      actor: events.Actor = events.CLI) -> int:
    """Revoke every session of the user; returns how many were live."""
    with transaction():
        user_id, _, _ = _lock_user(tenant_slug, who)
        revoked = revoke_all_for_user(user_id, now, "admin", actor)
    security_event("sessions_revoked", tenant=tenant_slug, user_id=user_id,
                   sessions_revoked=revoked, reason="admin")
    return revoked


def user_sessions(tenant_slug: str, who: UserRef, now: datetime) -> list[SessionInfo]:
    """The user's live sessions, newest first (`current` is always False: no caller session)."""
    with transaction():
        tenant_id = _tenant(tenant_slug).id
        user_id = db.session.execute(select(User.id).where(_is(tenant_id, who))).scalar()
        if user_id is None:
            raise _missing(tenant_slug, who)
        rows = db.session.execute(
            select(AuthSession.id, AuthSession.created_at, AuthSession.last_used_at,
                   AuthSession.expires_at, AuthSession.user_agent)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None),
                   AuthSession.expires_at > now)
            .order_by(AuthSession.created_at.desc())
        ).all()
    return [SessionInfo(str(r.id), r.created_at, r.last_used_at, r.expires_at, r.user_agent,
                        False) for r in rows]
