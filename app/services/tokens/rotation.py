"""Refresh-token rotation (RFC 6749 §6; SPEC §5): what a presented refresh token gets.

`rotate()` opens the transaction, locks the token's session and then the token in one
statement (app.services.tokens.family: the lock order of every revoking path), and decides
under those locks, in this order (`decide`):

  presented token                                              outcome
  unknown in this tenant                                       rejected (invalid_grant)
  its session revoked or expired, or its user disabled         rejected
  the session's current token, idle-expired                    rejected
  the session's current token                                  ROTATE: marked rotated, its
                                                               successor inserted and made
                                                               current
  the session's immediate predecessor, rotated less than       DUPLICATE: the same successor
  reuse_interval ago (from its own rotation), its successor    and the same access token
  still current; reuse_interval 0 never                        (derived, not stored)
  any other rotated token                                      REPLAY: the session revoked,
                                                               committed, then rejected

Rejections write nothing, except a replay's revocation and its two events, which commit
before the client hears `invalid_grant` (an exception inside the transaction would roll them
back, so the decision is returned, not raised).
"""
from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from dataclasses import replace
from datetime import datetime
from datetime import timedelta
from typing import cast

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.crypto import successor_token
from app.crypto import token_digest
from app.database.statements import HotStatement
from app.extensions import db
from app.logs import security_event
from app.metrics import count_refresh
from app.models import AuthSession
from app.models import RefreshToken
from app.runtime import runtime
from app.services.audit import events
from app.services.errors import TokenRejected
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.tenancy.signing_keys import private_key
from app.services.tokens import family
from app.services.tokens.family import LockedToken
from app.services.tokens.issuing import Grant
from app.services.tokens.issuing import IssuedTokens
from app.services.tokens.issuing import issue
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """A refusal; `revoked` when it revoked the session (a replay)."""

    reason: str  # a key of REJECTION_OUTCOMES
    revoked: bool = False


# Rejection.reason -> baton_refresh_total{outcome}
REJECTION_OUTCOMES = {"unknown token": "invalid", "session revoked": "revoked",
                      "session expired": "expired", "user disabled": "revoked",
                      "token expired": "expired", "replay": "replay",
                      "successor mismatch": "invalid"}


def rotate(tenant_slug: str, presented: str, *, now: datetime,
           client_address: str | None = None) -> IssuedTokens:
    """Refresh grant: exchange a refresh token for its successor, exactly once (SPEC §5)."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        # Everything that can fail runs before the rotation is written (SPEC §11): an
        # undecryptable key is a 503 that changed nothing, never a committed rotation
        # whose answer was lost (the retry would later be judged a replay).
        signer = private_key(tenant.kid, tenant.encrypted_key)
        chain = family.lock_token(tenant.id, presented)
        outcome = (Rejection("unknown token") if chain is None
                   else decide(chain, tenant, signer, presented, now, client_address))
    if isinstance(outcome, Rejection):
        count_refresh(REJECTION_OUTCOMES[outcome.reason])
        _report(outcome, tenant_slug, chain)
        raise TokenRejected()
    count_refresh("duplicate" if outcome.duplicate else "rotated")
    return issue(outcome, tenant.issuer, now)


def decide(chain: LockedToken, tenant: TenantInfo, signer: Ed25519PrivateKey, presented: str,
           now: datetime, client_address: str | None = None) -> Grant | Rejection:
    """SPEC §5's table (the module docstring), applied under the session and token locks."""
    if chain.revoked_at is not None:
        return Rejection("session revoked")
    if chain.session_expires_at <= now:
        return Rejection("session expired")
    if chain.disabled_at is not None:
        return Rejection("user disabled")
    if chain.current:
        if chain.token_expires_at <= now:
            return Rejection("token expired")
        return _rotate(chain, tenant, signer, presented, now)
    duplicate = _duplicate_within_interval(chain, tenant, signer, presented, now)
    if duplicate is not None:
        return duplicate
    _revoke_for_replay(chain, tenant, now, client_address)
    return Rejection("replay", revoked=True)


# Mark the token rotated, insert the successor and make it the session's current token:
# one round trip. (Parameter names differ from column names: SQLAlchemy turns an execute()
# parameter named like a column of an UPDATE or INSERT into one more SET/VALUES entry.)
# Only the session's UPDATE touches an indexed column of neither table, so both updates
# are HOT; the session's `current_token_id = :token_id` guard makes a stale decision
# update nothing (the caller then aborts).
_tokens = cast(sa.Table, RefreshToken.__table__)
_sessions = cast(sa.Table, AuthSession.__table__)
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
ROTATE = HotStatement(
    sa.update(_sessions)
    .where(_sessions.c.id == _successor_row.c.session_id,
           _sessions.c.current_token_id == sa.bindparam("token_id"))
    .values(last_used_at=sa.bindparam("now"), current_token_id=_successor_row.c.id),
    "baton_rotate",
    {"now": "timestamptz", "successor_digest": "bytea", "successor_expires_at": "timestamptz",
     "token_id": "bigint"},
)


def _rotate(chain: LockedToken, tenant: TenantInfo, signer: Ed25519PrivateKey, presented: str,
            now: datetime) -> Grant:
    successor = _successor(chain, tenant, presented, runtime().successor_key)
    digest = token_digest(successor)
    expires_at = min(now + timedelta(seconds=tenant.refresh_ttl), chain.session_expires_at)
    updated = ROTATE.rowcount({
        "now": now, "token_id": chain.token_id,
        "successor_digest": digest, "successor_expires_at": expires_at,
    })
    if updated != 1:  # impossible while the session row is locked; never answer with a ghost
        raise RuntimeError(f"rotation of token {chain.token_id} made {updated} successors current")
    return _grant(chain, tenant, signer, successor, digest, expires_at, issued_at=now)


def _successor(chain: LockedToken, tenant: TenantInfo, presented: str, key: bytes) -> str:
    """The successor of the presented token under one successor key (SPEC §5)."""
    salt = None if chain.successor_salt is None else bytes(chain.successor_salt)
    return successor_token(presented, key, salt, tenant.id, chain.session_id.bytes)


def _duplicate_within_interval(chain: LockedToken, tenant: TenantInfo, signer: Ed25519PrivateKey,
                               presented: str, now: datetime) -> Grant | Rejection | None:
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
    return Rejection("successor mismatch")


def _revoke_for_replay(chain: LockedToken, tenant: TenantInfo, now: datetime,
                       client_address: str | None) -> None:
    """Revoke the (live, locked) session, with refresh_token.replayed and session.revoked in
    one INSERT, all in the transaction that commits before the client is refused."""
    family.revoke_session(chain.session_id, now, "replay")
    data = {"session_id": str(chain.session_id), "user_id": str(chain.user_id),
            "client_address": client_address}
    events.record_events([
        events.NewEvent(events.REFRESH_TOKEN_REPLAYED, tenant.id, events.SYSTEM, data),
        *events.session_revoked(tenant.id, [chain.session_id], "replay", events.SYSTEM, now,
                                user_id=str(chain.user_id)),
    ], now)


def _grant(chain: LockedToken, tenant: TenantInfo, signer: Ed25519PrivateKey, successor: str,
           digest: bytes, expires_at: datetime, *, issued_at: datetime) -> Grant:
    return Grant(successor, digest, expires_at, issued_at, chain.session_id, chain.user_id,
                 tenant.id, tenant.access_ttl, tenant.kid, signer, chain.auth_time,
                 tuple(chain.amr))


def _report(rejection: Rejection, tenant_slug: str, chain: LockedToken | None) -> None:
    session_id = chain.session_id if chain else None
    if rejection.revoked:
        security_event("refresh_token_replay", tenant=tenant_slug, session_id=session_id,
                       action="session_revoked")
    else:
        log.info("refresh rejected", extra={"event": "refresh_rejected", "tenant": tenant_slug,
                                            "session_id": session_id,
                                            "reason": rejection.reason})
