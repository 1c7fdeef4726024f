"""The token family: every statement that locks or revokes a session (SPEC §5).

The protocol, in the order every path takes its locks:
  1. the user row, when the change is about the user (disable, password change, reset,
     logout everywhere) or a login must not race one (FOR SHARE);
  2. the session rows, in id order;
  3. the refresh token rows.
Rotation locks its session and then its token in one statement (`FOR UPDATE OF sessions,
refresh_tokens`: PostgreSQL locks in that order), so the session row serializes everything
that happens to one family: a revoke racing a refresh either finishes first (the refresh
sees a revoked session) or waits for it (and revokes the successor too, since revocation
is a flag on the session). Every revocation writes its session.revoked event in the same
transaction. All functions run inside the caller's transaction (app.services.unit_of_work);
app.services.tokens.rotation applies SPEC §5's table under these locks.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from typing import NamedTuple
from typing import cast

import sqlalchemy as sa
from sqlalchemy import select

from app.crypto import token_digest
from app.database.statements import HotStatement
from app.extensions import db
from app.models import AuthSession
from app.models import ChallengeSession
from app.models import RefreshToken
from app.models import User
from app.services.audit import events

_tokens = cast(sa.Table, RefreshToken.__table__)
_sessions = cast(sa.Table, AuthSession.__table__)
_users = cast(sa.Table, User.__table__)


class LockedToken(NamedTuple):
    """A refresh token with its session (both rows locked) and its user's state."""

    token_id: int
    token_expires_at: datetime
    rotated_at: datetime | None
    session_id: uuid.UUID
    session_expires_at: datetime
    revoked_at: datetime | None
    user_id: int
    successor_salt: bytes | memoryview | None  # as the driver returns it
    disabled_at: datetime | None
    current_token_id: int | None  # the session's current token (SPEC §5)
    auth_time: datetime  # how the session signed in (SPEC §13.4): every refresh keeps it
    amr: list[str]

    @property
    def current(self) -> bool:
        """True if the presented token is its session's current token (not yet rotated)."""
        return self.token_id == self.current_token_id


class LockedUser(NamedTuple):
    id: int
    tenant_id: int
    disabled_at: datetime | None
    password_hash: str


# The first statement of a refresh, built on the Core tables and run on the DBAPI cursor
# (lock_token): the hot path.
_LOCK_TOKEN = (
    select(
        _tokens.c.id.label("token_id"),
        _tokens.c.expires_at.label("token_expires_at"),
        _tokens.c.rotated_at,
        _sessions.c.id.label("session_id"),
        _sessions.c.expires_at.label("session_expires_at"),
        _sessions.c.revoked_at,
        _sessions.c.user_id,
        _sessions.c.successor_salt,
        # A scalar subquery, not a third join: PostgreSQL plans every execution of this
        # statement, and a two-table join plans in ~0.05 ms against ~0.09 ms for three.
        select(_users.c.disabled_at).where(_users.c.id == _sessions.c.user_id)
        .scalar_subquery().label("disabled_at"),
        _sessions.c.current_token_id,
        _sessions.c.auth_time,
        _sessions.c.amr,
    )
    .select_from(_tokens)
    .join(_sessions, _sessions.c.id == _tokens.c.session_id)
    .where(_tokens.c.tenant_id == sa.bindparam("tenant_id"),
           _tokens.c.digest == sa.bindparam("digest"))
    .with_for_update(of=[_sessions, _tokens])
)


LOCK_TOKEN = HotStatement(_LOCK_TOKEN, "baton_lock_token",
                          {"tenant_id": "bigint", "digest": "bytea"})


def lock_token(tenant_id: int, presented: str) -> LockedToken | None:
    """Lock a refresh token's session, then the token (2, 3); None if the tenant has no such.

    The hot path: executed on the session connection's cursor (HotStatement). At most one
    row: (tenant_id, digest) is unique."""
    row = LOCK_TOKEN.fetchone({"tenant_id": tenant_id,
                                          "digest": token_digest(presented)})
    return None if row is None else LockedToken._make(row)


def lock_user(tenant_id: int, user: sa.ColumnElement[bool]) -> LockedUser | None:
    """Lock the user row named by `user` (1); None if the tenant has no such user."""
    row = db.session.execute(
        select(User.id, User.tenant_id, User.disabled_at, User.password_hash)
        .where(User.tenant_id == tenant_id, user).with_for_update()
    ).one_or_none()
    return None if row is None else LockedUser(*row)


def lock_session(tenant_id: int, session_id: uuid.UUID | None, user_id: int | None = None, *,
                 live: bool = False) -> int | None:
    """Lock one session row of the tenant (2); its user id, or None if there is none.

    `user_id` only finds that user's session; `live` only a session not yet revoked.
    """
    if session_id is None:
        return None
    query = select(AuthSession.user_id).where(AuthSession.id == session_id,
                                              AuthSession.tenant_id == tenant_id)
    if user_id is not None:
        query = query.where(AuthSession.user_id == user_id)
    if live:
        query = query.where(AuthSession.revoked_at.is_(None))
    owner: int | None = db.session.execute(query.with_for_update()).scalar_one_or_none()
    return owner


def revoke_session(session_id: uuid.UUID, now: datetime, reason: str) -> bool:
    """Revoke a session whose row the caller has locked; True if it was live."""
    result = cast("sa.CursorResult[Any]", db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    ))
    return result.rowcount == 1


def revoke_locked_session(tenant_id: int, session_id: uuid.UUID, user_id: int, now: datetime,
                          reason: str, actor: events.Actor) -> bool:
    """Revoke a locked session and write its session.revoked event; True if it was live."""
    revoked = revoke_session(session_id, now, reason)
    if revoked:
        events.record_events(events.session_revoked(
            tenant_id, [session_id], reason, actor, now, user_id=str(user_id)), now)
    return revoked


def revoke_all_for_user(tenant_id: int, user_id: int, now: datetime, reason: str,
                        actor: events.Actor) -> int:
    """Revoke every live session of a user whose row the caller locked; how many were live.

    The session rows are locked in id order first (2), so a refresh of any of them either
    finishes before or sees the revocation. The user's open challenge sessions (sign-ins in
    progress) end as well: their answers lock the user row first, so none is halfway.
    """
    ids = list(db.session.execute(
        select(AuthSession.id)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .order_by(AuthSession.id)
        .with_for_update()
    ).scalars())
    if ids:
        db.session.execute(
            sa.update(AuthSession)
            .where(AuthSession.id.in_(ids), AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
        )
        events.record_events(events.session_revoked(
            tenant_id, ids, reason, actor, now, user_id=str(user_id)), now)
    # A sign-in in progress (SPEC §13.3) would start a session after this: it ends too, and
    # codes issued before this (bound to the epoch) no longer redeem.
    db.session.execute(sa.update(User).where(User.id == user_id)
                       .values(sign_in_epoch=User.sign_in_epoch + 1))
    db.session.execute(sa.update(ChallengeSession)
                       .where(ChallengeSession.user_id == user_id,
                              ChallengeSession.state == "open")
                       .values(state="ended"))
    return len(ids)
