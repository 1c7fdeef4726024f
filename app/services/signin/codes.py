"""Authorization codes (SPEC §13.3; RFC 6749 §4.1, RFC 7636 PKCE with S256 only).

A code is 256 random bits, lives 60 s, is stored only as its SHA-256 digest and carries the
sign-in it records (user, amr, auth_time, client_id, the PKCE challenge). Redeeming it at
the token endpoint locks its row, so of N parallel redemptions exactly one starts a session;
every later presentation is a replay, which revokes that session (reason `code_replay`,
RFC 6749 §4.1.2) in a transaction that commits before the client is refused.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import select

from app.crypto import b64url
from app.crypto import token_digest
from app.extensions import db
from app.logs import security_event
from app.models import AuthorizationCode
from app.models import User
from app.services.audit import events
from app.services.errors import InvalidCredentials
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.tenancy.signing_keys import private_key
from app.services.tokens import family
from app.services.tokens.issuing import Grant
from app.services.tokens.issuing import IssuedTokens
from app.services.tokens.issuing import SignIn
from app.services.tokens.issuing import issue
from app.services.tokens.issuing import start_session
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)
CODE_TTL = timedelta(seconds=60)
CODE_BYTES = 32
# RFC 7636 §4.1 and §4.2: 43-128 unreserved characters (S256 challenges are 43).
PKCE_VALUE = re.compile(r"[A-Za-z0-9._~-]{43,128}")


def sign_in_fingerprint(password_hash: str, epoch: int) -> bytes:
    """Binds a sign-in in progress (a challenge, a code) to the user's password and revoke-all
    count (users.sign_in_epoch) at its start: a change of either in between kills it. (Epoch
    0 hashes as before the epoch existed, so codes in flight survive the upgrade.)"""
    epoch_part = b":%d" % epoch if epoch else b""
    return hashlib.sha256(b"baton-code:" + password_hash.encode() + epoch_part).digest()


def current_fingerprint(user_id: int, *, share_lock: bool = False) -> tuple[bytes, bool] | None:
    """(the user's sign-in fingerprint now, disabled?), or None without the user."""
    query = select(User.password_hash, User.sign_in_epoch, User.disabled_at).where(
        User.id == user_id)
    row = db.session.execute(query.with_for_update(read=True) if share_lock else query
                             ).one_or_none()
    if row is None:
        return None
    return sign_in_fingerprint(row.password_hash, row.sign_in_epoch), row.disabled_at is not None


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def issue_code(tenant: TenantInfo, user_id: int, fingerprint: bytes, code_challenge: str,
               client_id: str | None, amr: tuple[str, ...], auth_time: datetime,
               now: datetime) -> str:
    """A new code for a completed sign-in (in the caller's transaction); shown once.
    `fingerprint`: of the password hash the sign-in was proven under."""
    code = b64url(secrets.token_bytes(CODE_BYTES))
    db.session.execute(sa.insert(AuthorizationCode).values(
        tenant_id=tenant.id, user_id=user_id, digest=token_digest(code),
        code_challenge=code_challenge, client_id=client_id, amr=list(amr),
        auth_time=auth_time, password_fingerprint=fingerprint,
        created_at=now, expires_at=now + CODE_TTL))
    return code


@dataclass(frozen=True)
class _Refused:
    reason: str
    revoked: uuid.UUID | None = None  # the session a replay revoked


def redeem(tenant_slug: str, code: str, code_verifier: str, client_id: str | None, *,
           now: datetime, user_agent: str | None = None,
           client_address: str | None = None) -> IssuedTokens:
    """The `authorization_code` grant: a new session for the code's sign-in, exactly once."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        signer = private_key(tenant.kid, tenant.encrypted_key)  # 503 before any write
        row = db.session.execute(
            select(AuthorizationCode)
            .where(AuthorizationCode.tenant_id == tenant.id,
                   AuthorizationCode.digest == token_digest(code))
            .with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        outcome: Grant | _Refused
        if row is None:
            outcome = _Refused("unknown code")
        elif row.used_at is not None:
            outcome = _replayed(tenant, row, now)
        elif row.expires_at <= now:
            outcome = _Refused("expired code")
        elif row.client_id is not None and client_id != row.client_id:
            outcome = _Refused("client_id mismatch")
        elif not hmac.compare_digest(s256(code_verifier), row.code_challenge):
            outcome = _Refused("code_verifier mismatch")
        elif not _user_unchanged(row.user_id, row.password_fingerprint):
            outcome = _Refused("user disabled or password changed")
        else:
            outcome = start_session(tenant, signer, SignIn(
                row.user_id, row.auth_time, tuple(row.amr), row.client_id, user_agent,
                client_address), now)
            row.used_at, row.session_id = now, outcome.session_id
    if isinstance(outcome, _Refused):
        _report(outcome, tenant_slug)
        raise InvalidCredentials()
    log.info("code redeemed", extra={"event": "code_redeemed", "tenant": tenant_slug,
                                     "session_id": outcome.session_id})
    return issue(outcome, tenant.issuer, now)


def _replayed(tenant: TenantInfo, row: AuthorizationCode, now: datetime) -> _Refused:
    """A second presentation: revoke the session the first one started (if still live)."""
    if row.session_id is None:
        return _Refused("code replay")
    owner = family.lock_session(tenant.id, row.session_id)
    revoked = owner is not None and family.revoke_locked_session(
        tenant.id, row.session_id, owner, now, "code_replay", events.SYSTEM)
    return _Refused("code replay", row.session_id if revoked else None)


def _user_unchanged(user_id: int, fingerprint: bytes) -> bool:
    """Share-lock the user: still enabled, with the password and revoke-all count the code
    was issued under."""
    now_state = current_fingerprint(user_id, share_lock=True)
    return (now_state is not None and not now_state[1]
            and hmac.compare_digest(now_state[0], bytes(fingerprint)))


def _report(refused: _Refused, tenant_slug: str) -> None:
    if refused.revoked is not None:
        security_event("authorization_code_replay", tenant=tenant_slug,
                       session_id=refused.revoked, action="session_revoked")
    else:
        log.info("code refused", extra={"event": "code_refused", "tenant": tenant_slug,
                                        "reason": refused.reason})

