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

from app.extensions import db
from app.logs import security_event
from app.models import User
from app.models.tenant import MAX_PASSWORD_LENGTH
from app.models.user import MAX_USERNAME_LENGTH
from app.services.accounts.credentials import UserRef
from app.services.accounts.credentials import hash_new_password
from app.services.accounts.credentials import normalize_username
from app.services.accounts.credentials import user_clause
from app.services.accounts.factors import has_second_factor
from app.services.audit import events
from app.services.errors import InvalidInput
from app.services.errors import UsernameTaken
from app.services.errors import UserNotFound
from app.services.tenancy.lookup import lookup_tenant
from app.services.tokens import family
from app.services.tokens import sessions
from app.services.tokens.family import LockedUser
from app.services.tokens.sessions import SessionInfo
from app.services.unit_of_work import transaction


@dataclass(frozen=True)
class UserView:
    """What the admin API shows of a user (SPEC §9 user object)."""

    id: int
    username: str
    created_at: datetime
    disabled_at: datetime | None
    mfa: bool = False  # has a second factor (SPEC §13.4)


_USER_COLUMNS = (User.id, User.username, User.created_at, User.disabled_at)
_VIEW_COLUMNS = (*_USER_COLUMNS, has_second_factor(User.id).label("mfa"))


def validate_credentials(username: str, password: str) -> None:
    """Raise InvalidInput for a login whose username or password Baton could never store."""
    if not username or len(username) > MAX_USERNAME_LENGTH:
        raise InvalidInput(f"username must be 1-{MAX_USERNAME_LENGTH} characters")
    if username != username.strip() or "\x00" in username:
        raise InvalidInput("username must not contain surrounding spaces or NUL")
    if not password:
        raise InvalidInput("password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH or "\x00" in password:
        raise InvalidInput(f"password must be at most {MAX_PASSWORD_LENGTH} characters, no NUL")


def _missing(tenant_slug: str, who: UserRef) -> UserNotFound:
    return UserNotFound(tenant_slug, who)


def create_user(tenant_slug: str, username: str, password: str, now: datetime,
                actor: events.Actor = events.CLI) -> UserView:
    """Create a user; UsernameTaken if the normalised username exists in the tenant."""
    name = normalize_username(username)
    password_hash = hash_new_password(tenant_slug, password)
    try:
        with transaction():
            tenant = lookup_tenant(tenant_slug)
            row = db.session.execute(
                sa.insert(User).values(tenant_id=tenant.id, username=name,
                                       password_hash=password_hash, created_at=now)
                # A user created a moment ago has no factor (and an EXISTS in an INSERT's
                # RETURNING would not be correlated to the new row: it asked about every user).
                .returning(*_USER_COLUMNS, sa.false().label("mfa"))
            ).one()
            events.record_event(events.USER_CREATED, tenant.id, actor,
                                {"user_id": str(row.id)}, now)
    except IntegrityError as exc:
        if getattr(exc.orig, "pgcode", None) != "23505":  # unique_violation
            raise
        raise UsernameTaken(name, tenant_slug) from None
    security_event("user_created", tenant=tenant_slug, user_id=row.id)
    return UserView(*row)


def user_exists(tenant_slug: str, username: str) -> bool:
    return find_user(tenant_slug, username) is not None


def find_user(tenant_slug: str, username: str) -> UserView | None:
    """The user with this username (normalised as at login), or None."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        row = db.session.execute(
            select(*_VIEW_COLUMNS).where(user_clause(tenant.id, username))
        ).one_or_none()
    return UserView(*row) if row else None


def get_user(tenant_slug: str, who: UserRef) -> UserView:
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        row = db.session.execute(
            select(*_VIEW_COLUMNS).where(user_clause(tenant.id, who))
        ).one_or_none()
    if row is None:
        raise _missing(tenant_slug, who)
    return UserView(*row)


def encode_cursor(username: str) -> str:
    return base64.urlsafe_b64encode(username.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = (cursor + "=" * (-len(cursor) % 4)).encode("ascii")
        after = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError, UnicodeError):
        after = None
    # Only a stored username can be a cursor: a NUL or an overlong text never reaches SQL.
    if after is None or not after or len(after) > MAX_USERNAME_LENGTH or "\x00" in after:
        raise InvalidInput("cursor is malformed; use next_cursor of the previous page")
    return after


def list_users(tenant_slug: str, limit: int,
               cursor: str | None) -> tuple[list[UserView], str | None]:
    """One page of users in username order, after `cursor`; (users, next cursor or None).

    Keyset pagination on the unique (tenant, username) index: a user inserted while a client
    pages never shifts the others, so none is skipped or repeated.
    """
    after = decode_cursor(cursor) if cursor else None
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        query = select(*_VIEW_COLUMNS).where(User.tenant_id == tenant.id)
        if after is not None:
            query = query.where(User.username > after)
        rows = db.session.execute(query.order_by(User.username).limit(limit + 1)).all()
    page = [UserView(*row) for row in rows[:limit]]
    return page, (encode_cursor(page[-1].username) if len(rows) > limit else None)


def _lock_user(tenant_slug: str, tenant_id: int, who: UserRef) -> LockedUser:
    """Lock the user row (first in the revoke order); UserNotFound if there is none."""
    user = family.lock_user(tenant_id, user_clause(tenant_id, who))
    if user is None:
        raise _missing(tenant_slug, who)
    return user


def set_disabled(tenant_slug: str, who: UserRef, disabled: bool, now: datetime,
                 actor: events.Actor = events.CLI) -> tuple[UserView, int]:
    """Disable (revoking every session in the same transaction) or enable a user."""
    revoked = 0
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        user_id, tenant_id, disabled_at, _ = _lock_user(tenant_slug, tenant.id, who)
        data = {"user_id": str(user_id)}
        if disabled:
            if disabled_at is None:
                db.session.execute(sa.update(User).where(User.id == user_id)
                                   .values(disabled_at=now))
                events.record_event(events.USER_DISABLED, tenant_id, actor, data, now)
            revoked = family.revoke_all_for_user(tenant_id, user_id, now, "user_disabled", actor)
        elif disabled_at is not None:
            db.session.execute(sa.update(User).where(User.id == user_id).values(disabled_at=None))
            events.record_event(events.USER_ENABLED, tenant_id, actor, data, now)
        row = db.session.execute(select(*_VIEW_COLUMNS).where(User.id == user_id)).one()
    if (disabled_at is None) == disabled or revoked:  # logged only when something changed
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
        tenant = lookup_tenant(tenant_slug)
        user_id, tenant_id, _, _ = _lock_user(tenant_slug, tenant.id, who)
        db.session.execute(sa.update(User).where(User.id == user_id)
                           .values(password_hash=password_hash))
        events.record_event(events.USER_PASSWORD_CHANGED, tenant_id, actor,
                            {"user_id": str(user_id)}, now)
        revoked = family.revoke_all_for_user(tenant_id, user_id, now, "password_change", actor)
    security_event("password_set", tenant=tenant_slug, user_id=user_id, sessions_revoked=revoked)
    return revoked


def logout_everywhere(tenant_slug: str, who: UserRef, now: datetime,
                      actor: events.Actor = events.CLI) -> int:
    """Revoke every session of the user; returns how many were live."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        user_id = _lock_user(tenant_slug, tenant.id, who).id
        revoked = family.revoke_all_for_user(tenant.id, user_id, now, "admin", actor)
    security_event("sessions_revoked", tenant=tenant_slug, user_id=user_id,
                   sessions_revoked=revoked, reason="admin")
    return revoked


def user_sessions(tenant_slug: str, who: UserRef, now: datetime) -> list[SessionInfo]:
    """A user's live sessions, newest first (admin API: `current` is always False)."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        user_id = db.session.execute(select(User.id).where(user_clause(tenant.id, who))).scalar()
        if user_id is None:
            raise UserNotFound(tenant_slug, who)
        return sessions.live_sessions(user_id, now)
