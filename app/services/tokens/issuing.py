"""Issuing tokens: starting a session with its first refresh token, and turning a decided
grant into the token response (SPEC §4.1, §5, §6).

A grant is decided and written inside the service's transaction; the access token is signed
from the grant alone after the commit, so no lock is held while signing and a duplicate
(same grant) gets the byte-identical JWT.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.crypto import access_token_id
from app.crypto import new_refresh_token
from app.crypto import new_successor_salt
from app.crypto import token_digest
from app.extensions import db
from app.models import AuthSession
from app.models import RefreshToken
from app.runtime import runtime
from app.services.audit import events
from app.services.tenancy.lookup import TenantInfo
from app.services.tokens.access_tokens import AccessClaims
from app.services.tokens.access_tokens import sign_access_token

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
class Grant:
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
    auth_time: datetime  # the session's sign-in and its methods (SPEC §13.4)
    amr: tuple[str, ...]
    duplicate: bool = False  # the same successor again, within the reuse interval


@dataclass(frozen=True)
class SignIn:
    """How a user signed in: when, with what (RFC 8176 `amr`), from which of the tenant's
    apps, and where from. A new session records it (SPEC §13.4)."""

    user_id: int
    auth_time: datetime
    amr: tuple[str, ...]
    client_id: str | None = None
    user_agent: str | None = None
    client_address: str | None = None


PASSWORD = ("pwd",)


def start_session(tenant: TenantInfo, signer: Ed25519PrivateKey, sign_in: SignIn,
                  now: datetime) -> Grant:
    """A new session and its first refresh token, in the caller's transaction."""
    user_id, user_agent = sign_in.user_id, sign_in.user_agent
    session_id = uuid.uuid4()
    session_expires_at = now + timedelta(seconds=tenant.session_ttl)
    refresh = new_refresh_token()
    refresh_expires_at = min(now + timedelta(seconds=tenant.refresh_ttl), session_expires_at)
    db.session.execute(sa.insert(AuthSession).values(
        id=session_id, tenant_id=tenant.id, user_id=user_id, created_at=now,
        last_used_at=now, expires_at=session_expires_at,
        user_agent=(user_agent or None) and user_agent[:MAX_USER_AGENT],
        successor_salt=new_successor_salt(), auth_time=sign_in.auth_time,
        amr=list(sign_in.amr), client_id=sign_in.client_id,
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
                         "client_address": sign_in.client_address, "amr": list(sign_in.amr),
                         "client_id": sign_in.client_id}, now)
    return Grant(refresh, digest, refresh_expires_at, now, session_id, user_id, tenant.id,
                 tenant.access_ttl, tenant.kid, signer, sign_in.auth_time, sign_in.amr)


def issue(grant: Grant, issuer: str, now: datetime) -> IssuedTokens:
    """Sign the access token from the grant alone, so a duplicate gets the identical JWT."""
    issued_at = int(grant.issued_at.timestamp())
    expires_at = issued_at + grant.access_ttl
    claims = AccessClaims(
        issuer=issuer, audience=runtime().audience, user_id=grant.user_id,
        session_id=str(grant.session_id), tenant_id=grant.tenant_id, issued_at=issued_at,
        expires_at=expires_at, token_id=access_token_id(grant.refresh_digest),
        auth_time=int(grant.auth_time.timestamp()), amr=grant.amr,
    )
    now_s = int(now.timestamp())
    return IssuedTokens(
        access_token=sign_access_token(claims, grant.kid, grant.signer),
        expires_in=max(0, expires_at - now_s),
        refresh_token=grant.refresh_token,
        refresh_expires_in=max(0, int((grant.refresh_expires_at - now).total_seconds())),
        session_id=str(grant.session_id),
    )
