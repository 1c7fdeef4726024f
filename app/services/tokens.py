"""Token grants: password login and refresh-token rotation (RFC 6749 §4.3 and §6; SPEC §5).

The locks are taken by app.services.family (the protocol lives there); this module
decides, under them, what a presented token gets: the state table of docs/design.md.
"""
from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from typing import cast

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.crypto import access_token_id
from app.crypto import new_refresh_token
from app.crypto import new_successor_salt
from app.crypto import successor_token
from app.crypto import token_digest
from app.extensions import db
from app.logs import security_event
from app.metrics import count_login
from app.metrics import count_refresh
from app.models import AuthSession
from app.models import RefreshToken
from app.models import User
from app.runtime import runtime
from app.services import events
from app.services import family
from app.services.access_tokens import AccessClaims
from app.services.access_tokens import sign_access_token
from app.services.accounts import normalize_username
from app.services.database import CursorStatement
from app.services.database import transaction
from app.services.errors import InvalidCredentials
from app.services.errors import LoginThrottled
from app.services.errors import TokenRejected
from app.services.family import LockedToken
from app.services.keys import private_key
from app.services.ratelimit import release_after_success
from app.services.ratelimit import reserve_attempt
from app.services.tenant_cache import TenantInfo
from app.services.tenant_cache import tenant_scope

log = logging.getLogger(__name__)
MAX_USER_AGENT = 512


@dataclass(frozen=True)
class IssuedTokens:
    """What the token endpoint returns (SPEC §4.1)."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    session_id: str


@dataclass(frozen=True)
class _Grant:
    """A decided grant, signed after commit so no lock is held while signing.

    The signing key is decrypted before the commit (it is the one thing that can fail):
    after a rotation commits, nothing is left that could keep its answer from the client.
    """

    refresh_token: str
    refresh_digest: bytes
    refresh_expires_at: datetime
    issued_at: datetime  # the rotation (or login) time: duplicates reuse it
    session_id: uuid.UUID
    user_id: int
    tenant_id: int
    access_ttl: int
    kid: str
    signer: Ed25519PrivateKey
    duplicate: bool = False  # the same successor again, within the reuse interval


@dataclass(frozen=True)
class _Rejection:
    reason: str
    session_id: uuid.UUID | None = None
    revoked: bool = False


# _Rejection.reason -> baton_refresh_total{outcome}
_REJECTION_OUTCOMES = {"unknown token": "invalid", "session revoked": "revoked",
                       "session expired": "expired", "user disabled": "revoked",
                       "token expired": "expired", "replay": "replay",
                       "successor mismatch": "invalid"}


_tokens = cast(sa.Table, RefreshToken.__table__)
_sessions = cast(sa.Table, AuthSession.__table__)

# Mark the token rotated, insert the successor and make it the session's current token:
# one round trip. (Parameter names differ from column names: SQLAlchemy turns an execute()
# parameter named like a column of an UPDATE or INSERT into one more SET/VALUES entry.)
# Only the session's UPDATE touches an indexed column of neither table, so both updates
# are HOT; the session's `current_token_id = :token_id` guard makes a stale decision
# update nothing (the caller then aborts).
_rotated = (
    sa.update(_tokens)
    .where(_tokens.c.id == sa.bindparam("token_id"))
    .values(rotated_at=sa.bindparam("now"))
    .returning(_tokens.c.id, _tokens.c.tenant_id, _tokens.c.session_id)
    .cte("rotated")
)
_successor_row = (
    sa.insert(_tokens)
    .from_select(
        ["tenant_id", "session_id", "parent_id", "digest", "created_at", "expires_at"],
        select(_rotated.c.tenant_id, _rotated.c.session_id, _rotated.c.id,
               sa.bindparam("successor_digest", type_=_tokens.c.digest.type),
               sa.bindparam("now", type_=_tokens.c.created_at.type),
               sa.bindparam("successor_expires_at", type_=_tokens.c.expires_at.type))
    )
    .returning(_tokens.c.id, _tokens.c.session_id)
    .cte("successor")
)
_ROTATE = (
    sa.update(_sessions)
    .where(_sessions.c.id == _successor_row.c.session_id,
           _sessions.c.current_token_id == sa.bindparam("token_id"))
    .values(last_used_at=sa.bindparam("now"), current_token_id=_successor_row.c.id)
)
_ROTATE_ON_CURSOR = CursorStatement(_ROTATE)  # the hot path (app.services.database)


def login(
    tenant_slug: str, username: str, password: str, *, now: datetime,
    user_agent: str | None = None, client_address: str | None = None,
) -> IssuedTokens:
    """Password grant: count the attempt, verify the password, start a session."""
    rt = runtime()
    username = normalize_username(username)  # `Alice` logs in as `alice` (SPEC §11)
    user = None
    try:
        with tenant_scope(tenant_slug) as tenant:
            signer = private_key(tenant.kid, tenant.encrypted_key)  # 503 before any write
            user = db.session.execute(
                select(User.id, User.password_hash, User.disabled_at)
                .where(User.tenant_id == tenant.id, User.username == username)
            ).one_or_none()
            # Committed before hashing, so parallel guesses on other workers see it (429).
            reserve_attempt(tenant.id, username, client_address, now, rt.login_limits)
    except LoginThrottled as throttled:
        count_login("throttled")
        events.record_login_throttled(throttled.tenant_id, throttled.limits, client_address,
                                      user.id if user else None, now)
        raise
    # verify() hashes even for an unknown user: the timing tells nothing. No transaction is
    # open while it runs.
    valid = rt.passwords.verify(user.password_hash if user else None, password)
    if not valid or user is None or user.disabled_at is not None:
        log.info("login failed", extra={"event": "login_failed", "tenant": tenant_slug})
        count_login("invalid")
        raise InvalidCredentials()
    with transaction():
        if not family.share_lock_unchanged_user(user.id, user.password_hash):
            count_login("invalid")
            raise InvalidCredentials()
        if rt.passwords.needs_rehash(user.password_hash):
            db.session.execute(
                sa.update(User).where(User.id == user.id)
                .values(password_hash=rt.passwords.hash(password))
            )
        release_after_success(tenant.id, username, client_address)
        grant = _start_session(tenant, signer, user.id, now, user_agent, client_address)
    count_login("success")
    log.info("login", extra={"event": "login", "tenant": tenant_slug,
                             "session_id": grant.session_id})
    return _issue(grant, tenant.issuer, now)


def _start_session(tenant: TenantInfo, signer: Ed25519PrivateKey, user_id: int, now: datetime,
                   user_agent: str | None, client_address: str | None) -> _Grant:
    session_id = uuid.uuid4()
    session_expires_at = now + timedelta(seconds=tenant.session_ttl)
    refresh = new_refresh_token()
    refresh_expires_at = min(now + timedelta(seconds=tenant.refresh_ttl), session_expires_at)
    db.session.execute(sa.insert(AuthSession).values(
        id=session_id, tenant_id=tenant.id, user_id=user_id, created_at=now,
        last_used_at=now, expires_at=session_expires_at,
        user_agent=(user_agent or None) and user_agent[:MAX_USER_AGENT],
        successor_salt=new_successor_salt(),
    ))
    digest = token_digest(refresh)
    token_id = db.session.execute(sa.insert(RefreshToken).values(
        tenant_id=tenant.id, session_id=session_id, digest=digest,
        created_at=now, expires_at=refresh_expires_at,
    ).returning(RefreshToken.id)).scalar_one()
    db.session.execute(sa.update(AuthSession).where(AuthSession.id == session_id)
                       .values(current_token_id=token_id))
    events.record_event(events.SESSION_STARTED, tenant.id, events.user_actor(user_id),
                        {"session_id": str(session_id), "user_id": str(user_id),
                         "client_address": client_address}, now)
    return _Grant(refresh, digest, refresh_expires_at, now, session_id, user_id, tenant.id,
                  tenant.access_ttl, tenant.kid, signer)


def rotate(tenant_slug: str, presented: str, *, now: datetime,
           client_address: str | None = None) -> IssuedTokens:
    """Refresh grant: exchange a refresh token for its successor, exactly once (SPEC §5)."""
    with tenant_scope(tenant_slug) as tenant:
        # Everything that can fail runs before the rotation is written (SPEC §11): an
        # undecryptable key is a 503 that changed nothing, never a committed rotation
        # whose answer was lost (the retry would later be judged a replay).
        signer = private_key(tenant.kid, tenant.encrypted_key)
        chain = family.lock_token(tenant.id, presented)
        outcome = (_Rejection("unknown token") if chain is None
                   else _decide(chain, tenant, signer, presented, now, client_address))
    if isinstance(outcome, _Rejection):
        count_refresh(_REJECTION_OUTCOMES.get(outcome.reason, "invalid"))
        _report(outcome, tenant_slug)
        raise TokenRejected()
    count_refresh("duplicate" if outcome.duplicate else "rotated")
    return _issue(outcome, tenant.issuer, now)


def _successor(chain: LockedToken, tenant: TenantInfo, presented: str, key: bytes) -> str:
    """The successor of the presented token under one successor key (SPEC §5)."""
    return successor_token(presented, key, _bytes(chain.successor_salt), tenant.id,
                           chain.session_id.bytes)


def _bytes(value: bytes | memoryview | None) -> bytes | None:
    return None if value is None else bytes(value)


def _decide(chain: LockedToken, tenant: TenantInfo, signer: Ed25519PrivateKey, presented: str,
            now: datetime, client_address: str | None = None) -> _Grant | _Rejection:
    """The state table of docs/design.md, applied under the session and token locks."""
    if chain.revoked_at is not None:
        return _Rejection("session revoked", chain.session_id)
    if chain.session_expires_at <= now:
        return _Rejection("session expired", chain.session_id)
    if chain.disabled_at is not None:
        return _Rejection("user disabled", chain.session_id)
    if chain.current:
        if chain.token_expires_at <= now:
            return _Rejection("token expired", chain.session_id)
        return _rotate(chain, tenant, signer, presented, now)
    duplicate = _duplicate_within_interval(chain, tenant, signer, presented, now)
    if duplicate is not None:
        return duplicate
    family.revoke_session(chain.session_id, now, "replay")
    _record_replay(chain, tenant, now, client_address)
    return _Rejection("replay", chain.session_id, revoked=True)


def _record_replay(chain: LockedToken, tenant: TenantInfo, now: datetime,
                   client_address: str | None) -> None:
    """refresh_token.replayed and session.revoked, one INSERT in the revoking transaction."""
    data = {"session_id": str(chain.session_id), "user_id": str(chain.user_id),
            "client_address": client_address}
    events.record_events([
        events.NewEvent(events.REFRESH_TOKEN_REPLAYED, tenant.id, events.SYSTEM, data),
        *events.session_revoked(tenant.id, [chain.session_id], "replay", events.SYSTEM, now,
                                user_id=str(chain.user_id)),
    ], now)


def _rotate(chain: LockedToken, tenant: TenantInfo, signer: Ed25519PrivateKey, presented: str,
            now: datetime) -> _Grant:
    successor = _successor(chain, tenant, presented, runtime().successor_key)
    digest = token_digest(successor)
    expires_at = min(now + timedelta(seconds=tenant.refresh_ttl), chain.session_expires_at)
    updated = _ROTATE_ON_CURSOR.rowcount({
        "now": now, "token_id": chain.token_id,
        "successor_digest": digest, "successor_expires_at": expires_at,
    })
    if updated != 1:  # impossible while the session row is locked; never answer with a ghost
        raise RuntimeError(f"rotation of token {chain.token_id} made {updated} successors current")
    return _grant(chain, tenant, signer, successor, digest, expires_at, issued_at=now)


def _duplicate_within_interval(chain: LockedToken, tenant: TenantInfo, signer: Ed25519PrivateKey,
                               presented: str, now: datetime) -> _Grant | _Rejection | None:
    """The same successor again, if this is the immediate predecessor within the interval."""
    interval = timedelta(seconds=tenant.reuse_interval)
    if (chain.rotated_at is None or chain.current_token_id is None
            or tenant.reuse_interval == 0 or now - chain.rotated_at >= interval):
        return None
    child = db.session.execute(
        select(RefreshToken.digest, RefreshToken.expires_at)
        .where(RefreshToken.id == chain.current_token_id,
               RefreshToken.parent_id == chain.token_id)
    ).one_or_none()
    if child is None:
        return None  # the session's current token is not its successor: the chain moved on
    # The rotation may have been made under a secret that is now a fallback.
    for key in runtime().successor_keys:
        successor = _successor(chain, tenant, presented, key)
        digest = token_digest(successor)
        if hmac.compare_digest(bytes(child.digest), digest):
            return replace(_grant(chain, tenant, signer, successor, digest, child.expires_at,
                                  issued_at=chain.rotated_at), duplicate=True)
    # No configured secret reproduces it: the secret changed without SECRET_KEY_FALLBACKS.
    # The client is honest (a duplicate within the interval), so refuse without revoking.
    log.error("successor mismatch: no configured secret reproduces the successor; add the "
              "previous secret to SECRET_KEY_FALLBACKS",
              extra={"event": "successor_mismatch", "session_id": chain.session_id})
    return _Rejection("successor mismatch", chain.session_id)


def _grant(chain: LockedToken, tenant: TenantInfo, signer: Ed25519PrivateKey, successor: str,
           digest: bytes, expires_at: datetime, *, issued_at: datetime) -> _Grant:
    return _Grant(successor, digest, expires_at, issued_at, chain.session_id, chain.user_id,
                  tenant.id, tenant.access_ttl, tenant.kid, signer)


def _report(rejection: _Rejection, tenant_slug: str) -> None:
    if rejection.revoked:
        security_event("refresh_token_replay", tenant=tenant_slug,
                       session_id=rejection.session_id, action="session_revoked")
    else:
        log.info("refresh rejected", extra={"event": "refresh_rejected", "tenant": tenant_slug,
                                            "session_id": rejection.session_id,
                                            "reason": rejection.reason})


def _issue(grant: _Grant, issuer: str, now: datetime) -> IssuedTokens:
    """Sign the access token from the grant alone, so a duplicate gets the identical JWT."""
    issued_at = int(grant.issued_at.timestamp())
    expires_at = issued_at + grant.access_ttl
    claims = AccessClaims(
        issuer=issuer, audience=runtime().audience, user_id=grant.user_id,
        session_id=str(grant.session_id), tenant_id=grant.tenant_id, issued_at=issued_at,
        expires_at=expires_at, token_id=access_token_id(grant.refresh_digest),
    )
    now_s = int(now.timestamp())
    return IssuedTokens(
        access_token=sign_access_token(claims, grant.kid, grant.signer),
        expires_in=max(0, expires_at - now_s),
        refresh_token=grant.refresh_token,
        refresh_expires_in=max(0, int((grant.refresh_expires_at - now).total_seconds())),
        session_id=str(grant.session_id),
    )
