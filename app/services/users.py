"""Users: creation with an argon2id password hash."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from app.errors import InvalidRequest
from app.errors import NotFound
from app.extensions import db
from app.logs import security_event
from app.models import Tenant
from app.models import User
from app.models.user import MAX_USERNAME_LENGTH
from app.runtime import runtime
from app.services import events
from app.services.database import transaction
from app.services.sessions import revoke_all_for_user

MAX_PASSWORD_LENGTH = 1024


def validate_credentials(username: str, password: str) -> None:
    """Raise InvalidRequest for a username or password Baton will not store."""
    if not username or len(username) > MAX_USERNAME_LENGTH:
        raise InvalidRequest(f"username must be 1-{MAX_USERNAME_LENGTH} characters")
    if username != username.strip() or "\x00" in username:
        raise InvalidRequest("username must not contain surrounding spaces or NUL")
    if not password:
        raise InvalidRequest("password must not be empty")
    if len(password) > MAX_PASSWORD_LENGTH or "\x00" in password:
        raise InvalidRequest(f"password must be at most {MAX_PASSWORD_LENGTH} characters, no NUL")


def create_user(tenant_slug: str, username: str, password: str, now: datetime,
                actor: events.Actor = events.CLI) -> int:
    """Create a user of the tenant; returns the user id."""
    validate_credentials(username, password)
    password_hash = runtime().passwords.hash(password)  # outside the transaction: it is slow
    with transaction():
        tenant_id = db.session.execute(
            select(Tenant.id).where(Tenant.slug == tenant_slug)
        ).scalar_one_or_none()
        if tenant_id is None:
            raise NotFound(f"unknown tenant {tenant_slug!r}")
        taken = db.session.execute(
            select(User.id).where(User.tenant_id == tenant_id, User.username == username)
        ).first()
        if taken is not None:
            raise InvalidRequest(f"user {username!r} already exists in tenant {tenant_slug!r}")
        user = User(tenant_id=tenant_id, username=username, password_hash=password_hash,
                    created_at=now)
        db.session.add(user)
        db.session.flush()
        events.record_event(events.USER_CREATED, tenant_id, actor, {"user_id": str(user.id)}, now)
        return user.id


def user_exists(tenant_slug: str, username: str) -> bool:
    with transaction():
        return db.session.execute(
            select(User.id).join(Tenant, Tenant.id == User.tenant_id)
            .where(Tenant.slug == tenant_slug, User.username == username)
        ).first() is not None


def _lock_user(tenant_slug: str, username: str) -> User:
    """The user row, locked; NotFound for an unknown tenant or user."""
    user = db.session.execute(
        select(User).join(Tenant, Tenant.id == User.tenant_id)
        .where(Tenant.slug == tenant_slug, User.username == username)
        .with_for_update(of=User)
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user {username!r} in tenant {tenant_slug!r}")
    return user


def disable_user(tenant_slug: str, username: str, now: datetime,
                 actor: events.Actor = events.CLI) -> int:
    """Disable a user and revoke all of their sessions in one transaction; returns how many."""
    with transaction():
        user = _lock_user(tenant_slug, username)
        user_id, tenant_id = user.id, user.tenant_id  # read before commit expires the object
        if user.disabled_at is None:
            user.disabled_at = now
            events.record_event(events.USER_DISABLED, tenant_id, actor,
                                {"user_id": str(user_id)}, now)
        revoked = revoke_all_for_user(user_id, now, "user_disabled", actor)
    security_event("user_disabled", tenant=tenant_slug, user_id=user_id, sessions_revoked=revoked)
    return revoked


def set_password(tenant_slug: str, username: str, password: str, now: datetime,
                 actor: events.Actor = events.CLI) -> int:
    """Set a new password and revoke all of the user's sessions; returns how many."""
    validate_credentials(username, password)
    password_hash = runtime().passwords.hash(password)
    with transaction():
        user = _lock_user(tenant_slug, username)
        user_id, tenant_id = user.id, user.tenant_id  # read before commit expires the object
        user.password_hash = password_hash
        events.record_event(events.USER_PASSWORD_CHANGED, tenant_id, actor,
                            {"user_id": str(user_id)}, now)
        revoked = revoke_all_for_user(user_id, now, "password_change", actor)
    security_event("password_set", tenant=tenant_slug, user_id=user_id, sessions_revoked=revoked)
    return revoked
