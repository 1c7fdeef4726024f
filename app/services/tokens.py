"""Token grants: password login and refresh-token rotation (RFC 6749 §4.3 and §6; SPEC §5).

Rotation locks the session row, then the token row, in one statement
(`FOR UPDATE OF sessions, refresh_tokens`: PostgreSQL locks in that order).
Every path that revokes takes the session lock first too, so the session row
serializes everything that happens to one token family. docs/design.md has
the protocol and the state table this module implements.
"""
from __future__ import annotations

import hmac
import logging
import uuid
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.crypto import access_token_id
from app.crypto import new_refresh_token
from app.crypto import new_successor_salt
from app.crypto import successor_token
from app.crypto import token_digest
from app.errors import InvalidGrant
from app.errors import NotFound
from app.extensions import db
from app.logs import security_event
from app.metrics import count_login
from app.metrics import count_refresh
from app.models import AuthSession
from app.models import RefreshToken
from app.models import User
from app.runtime import runtime
from app.services import events
from app.services.access_tokens import AccessClaims
from app.services.access_tokens import sign_access_token
from app.services.accounts import normalize_username
from app.services.database import transaction
from app.services.keys import private_key
from app.services.ratelimit import LoginThrottled
from app.services.ratelimit import release_after_success
from app.services.ratelimit import reserve_attempt
from app.services.tenant_cache import TenantInfo
from app.services.tenant_cache import tenant_info

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


# The one query of a refresh: the token (by tenant and digest), its session and user,
# locking the session row and then the token row. Tenant settings and the signing key come
# from the per-worker cache. Built on the Core tables, not the mapped classes, so executing
# it skips the ORM's per-statement work: this is the hot path.
_tokens, _sessions, _users = RefreshToken.__table__, AuthSession.__table__, User.__table__
_LOCK_CHAIN = (
    select(
        _tokens.c.id.label("token_id"),
        _tokens.c.expires_at.label("token_expires_at"),
        _tokens.c.rotated_at,
        _sessions.c.id.label("session_id"),
        _sessions.c.expires_at.label("session_expires_at"),
        _sessions.c.revoked_at,
        _sessions.c.user_id,
        _sessions.c.successor_salt,
        _users.c.disabled_at,
    )
    .select_from(_tokens)
    .join(_sessions, _sessions.c.id == _tokens.c.session_id)
    .join(_users, _users.c.id == _sessions.c.user_id)
    .where(_tokens.c.tenant_id == sa.bindparam("tenant_id"),
           _tokens.c.digest == sa.bindparam("digest"))
    .with_for_update(of=[_sessions, _tokens])
)

# Mark the token rotated, touch the session and insert the successor: one round trip.
# The INSERT reads from `rotated`, so the UPDATE runs first and the partial unique
# index (one current token per session) never sees two current tokens.
_ROTATE = sa.text(
    """
    WITH rotated AS (
        UPDATE refresh_tokens SET rotated_at = :now
        WHERE id = :token_id AND rotated_at IS NULL
        RETURNING id, tenant_id, session_id
    ), touched AS (
        UPDATE sessions SET last_used_at = :now WHERE id = :session_id
    )
    INSERT INTO refresh_tokens (tenant_id, session_id, parent_id, digest, created_at, expires_at)
    SELECT tenant_id, session_id, id, :digest, :now, :expires_at FROM rotated
    """
)


def login(
    tenant_slug: str, username: str, password: str, *, issuer: str, now: datetime,
    user_agent: str | None = None, client_address: str | None = None,
) -> IssuedTokens:
    """Password grant: count the attempt, verify the password, start a session."""
    rt = runtime()
    username = normalize_username(username)  # `Alice` logs in as `alice` (SPEC §11)
    user = None
    try:
        with transaction():
            tenant = tenant_info(tenant_slug)
            if tenant is None:
                raise NotFound("Unknown tenant.")
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
        raise InvalidGrant()
    with transaction():
        # The user row, shared-locked: a disable or password change that committed while the
        # hash ran (and revoked every session) must not be followed by a fresh session.
        unchanged = db.session.execute(
            select(User.id).where(User.id == user.id, User.disabled_at.is_(None),
                                  User.password_hash == user.password_hash)
            .with_for_update(read=True)
        ).first()
        if unchanged is None:
            count_login("invalid")
            raise InvalidGrant()
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
    return _issue(grant, issuer, now)


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
    db.session.execute(sa.insert(RefreshToken).values(
        tenant_id=tenant.id, session_id=session_id, digest=digest,
        created_at=now, expires_at=refresh_expires_at,
    ))
    events.record_event(events.SESSION_STARTED, tenant.id, events.user_actor(user_id),
                        {"session_id": str(session_id), "user_id": str(user_id),
                         "client_address": client_address}, now)
    return _Grant(refresh, digest, refresh_expires_at, now, session_id, user_id, tenant.id,
                  tenant.access_ttl, tenant.kid, signer)


def rotate(tenant_slug: str, presented: str, *, issuer: str, now: datetime,
           client_address: str | None = None) -> IssuedTokens:
    """Refresh grant: exchange a refresh token for its successor, exactly once (SPEC §5)."""
    with transaction():
        tenant = tenant_info(tenant_slug)
        if tenant is None:
            raise NotFound("Unknown tenant.")
        # Everything that can fail runs before the rotation is written (SPEC §11): an
        # undecryptable key is a 503 that changed nothing, never a committed rotation
        # whose answer was lost (the retry would later be judged a replay).
        signer = private_key(tenant.kid, tenant.encrypted_key)
        chain = lock_chain(tenant.id, presented)
        outcome = (_Rejection("unknown token") if chain is None
                   else _decide(chain, tenant, signer, presented, now, client_address))
    if isinstance(outcome, _Rejection):
        count_refresh(_REJECTION_OUTCOMES.get(outcome.reason, "invalid"))
        _report(outcome, tenant_slug)
        raise InvalidGrant()
    count_refresh("duplicate" if outcome.duplicate else "rotated")
    return _issue(outcome, issuer, now)


# The row lock_chain locks (the columns of _LOCK_CHAIN); Any until it is a typed named tuple.
Chain = Any


def lock_chain(tenant_id: int, presented: str) -> Chain | None:
    """Find a refresh token of the tenant and lock its session, then itself; None if unknown."""
    return db.session.connection().execute(
        _LOCK_CHAIN, {"tenant_id": tenant_id, "digest": token_digest(presented)}
    ).one_or_none()


def _successor(chain: Chain, tenant: TenantInfo, presented: str, key: bytes) -> str:
    """The successor of the presented token under one successor key (SPEC §5)."""
    return successor_token(presented, key, _bytes(chain.successor_salt), tenant.id,
                           chain.session_id.bytes)


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _decide(chain: Chain, tenant: TenantInfo, signer: Ed25519PrivateKey, presented: str,
            now: datetime, client_address: str | None = None) -> _Grant | _Rejection:
    """The state table of docs/design.md, applied under the session and token locks."""
    if chain.revoked_at is not None:
        return _Rejection("session revoked", chain.session_id)
    if chain.session_expires_at <= now:
        return _Rejection("session expired", chain.session_id)
    if chain.disabled_at is not None:
        return _Rejection("user disabled", chain.session_id)
    if chain.rotated_at is None:
        if chain.token_expires_at <= now:
            return _Rejection("token expired", chain.session_id)
        return _rotate(chain, tenant, signer, presented, now)
    duplicate = _duplicate_within_interval(chain, tenant, signer, presented, now)
    if duplicate is not None:
        return duplicate
    revoke_session(chain.session_id, now, "replay")
    _record_replay(chain, tenant, now, client_address)
    return _Rejection("replay", chain.session_id, revoked=True)


def _record_replay(chain: Chain, tenant: TenantInfo, now: datetime,
                   client_address: str | None) -> None:
    """refresh_token.replayed and session.revoked, one INSERT in the revoking transaction."""
    data = {"session_id": str(chain.session_id), "user_id": str(chain.user_id),
            "client_address": client_address}
    events.record_events([
        events.NewEvent(events.REFRESH_TOKEN_REPLAYED, tenant.id, events.SYSTEM, data),
        *events.session_revoked(tenant.id, [chain.session_id], "replay", events.SYSTEM, now,
                                user_id=str(chain.user_id)),
    ], now)


def _rotate(chain: Chain, tenant: TenantInfo, signer: Ed25519PrivateKey, presented: str,
            now: datetime) -> _Grant:
    successor = _successor(chain, tenant, presented, runtime().successor_key)
    digest = token_digest(successor)
    expires_at = min(now + timedelta(seconds=tenant.refresh_ttl), chain.session_expires_at)
    inserted = db.session.connection().execute(_ROTATE, {
        "now": now, "token_id": chain.token_id, "session_id": chain.session_id,
        "digest": digest, "expires_at": expires_at,
    }).rowcount
    if inserted != 1:  # impossible while the token row is locked; never answer with a ghost
        raise RuntimeError(f"rotation of token {chain.token_id} inserted {inserted} successors")
    return _grant(chain, tenant, signer, successor, digest, expires_at, issued_at=now)


def _duplicate_within_interval(chain: Chain, tenant: TenantInfo, signer: Ed25519PrivateKey,
                               presented: str, now: datetime) -> _Grant | _Rejection | None:
    """The same successor again, if this is the immediate predecessor within the interval."""
    interval = timedelta(seconds=tenant.reuse_interval)
    if tenant.reuse_interval == 0 or now - chain.rotated_at >= interval:
        return None
    child = db.session.execute(
        select(RefreshToken.digest, RefreshToken.expires_at, RefreshToken.rotated_at)
        .where(RefreshToken.parent_id == chain.token_id)
    ).one_or_none()
    if child is None or child.rotated_at is not None:
        return None  # the successor has itself been used: the chain moved on
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


def _grant(chain: Chain, tenant: TenantInfo, signer: Ed25519PrivateKey, successor: str,
           digest: bytes, expires_at: datetime, *, issued_at: datetime) -> _Grant:
    return _Grant(successor, digest, expires_at, issued_at, chain.session_id, chain.user_id,
                  tenant.id, tenant.access_ttl, tenant.kid, signer)


def revoke_session(session_id: uuid.UUID, now: datetime, reason: str) -> bool:
    """Revoke a session whose row the caller has locked; True if it was live."""
    result = db.session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoke_reason=reason)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


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
