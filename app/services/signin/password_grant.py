"""The password grant (RFC 6749 §4.3; SPEC §4.1, §13.3), and the password check it shares
with the challenge endpoint (app.services.signin.challenge).

Three short steps, so that no transaction is open while the password is hashed:
1. count the attempt (its own committed transaction, so parallel guesses on other workers
   see it: app.services.signin.throttling) and read the user;
2. verify the password (argon2, outside any transaction; an unknown user costs the same);
3. under a share lock on the user row (the user is still enabled with this very password
   hash: a disable or password change that committed meanwhile wins), act on it.
A user with a second factor (or of a tenant that requires one) never gets tokens here: only
a caller who knew the password is told so (SPEC §13.3).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.extensions import db
from app.metrics import count_login
from app.models import User
from app.runtime import runtime
from app.services.accounts.credentials import normalize_username
from app.services.accounts.factors import has_second_factor
from app.services.audit import events
from app.services.errors import GrantDisabled
from app.services.errors import InvalidCredentials
from app.services.errors import LoginThrottled
from app.services.errors import SecondFactorRequired
from app.services.signin.throttling import release_after_success
from app.services.signin.throttling import reserve_attempt
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.tenancy.signing_keys import private_key
from app.services.tokens.issuing import PASSWORD
from app.services.tokens.issuing import IssuedTokens
from app.services.tokens.issuing import SignIn
from app.services.tokens.issuing import issue
from app.services.tokens.issuing import start_session
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PasswordChecked:
    """A username and password that matched (steps 1 and 2)."""

    tenant: TenantInfo
    signer: Ed25519PrivateKey  # decrypted before anything was written: 503 changes nothing
    username: str  # normalised
    user_id: int
    password_hash: str
    needs_second_factor: bool  # has one, or the tenant requires one (step 3 decides again)


def login(
    tenant_slug: str, username: str, password: str, *, now: datetime,
    user_agent: str | None = None, client_address: str | None = None,
) -> IssuedTokens:
    """Password grant: count the attempt, verify the password, start a session."""
    checked = check_password(tenant_slug, username, password, now=now,
                             client_address=client_address, grant="password")
    tenant, signer = checked.tenant, checked.signer
    with transaction():
        if confirm_unchanged(checked, password, client_address).needs_second_factor:
            grant = None
        else:
            grant = start_session(tenant, signer, SignIn(
                checked.user_id, now, PASSWORD, None, user_agent, client_address), now)
    if grant is None:
        count_login("invalid")
        log.info("password grant refused: second factor required",
                 extra={"event": "second_factor_required", "tenant": tenant_slug})
        raise SecondFactorRequired()
    count_login("success")
    log.info("login", extra={"event": "login", "tenant": tenant_slug,
                             "session_id": grant.session_id})
    return issue(grant, tenant.issuer, now)


def check_password(tenant_slug: str, username: str, password: str, *, now: datetime,
                   client_address: str | None, grant: str | None = None) -> PasswordChecked:
    """Steps 1 and 2: InvalidCredentials (wrong password, unknown or disabled user) or
    LoginThrottled (429), both counted as the token endpoint counts them (SPEC §11).
    `grant="password"`: GrantDisabled first if the tenant turned the password grant off."""
    rt = runtime()
    username = normalize_username(username)  # `Alice` logs in as `alice` (SPEC §11)
    user = None
    try:
        with transaction():
            tenant = lookup_tenant(tenant_slug)
            if grant == "password" and not tenant.password_grant:
                raise GrantDisabled()
            signer = private_key(tenant.kid, tenant.encrypted_key)  # 503 before any write
            user = db.session.execute(
                select(User.id, User.password_hash, User.disabled_at,
                       has_second_factor(User.id).label("second_factor"))
                .where(User.tenant_id == tenant.id, User.username == username)
            ).one_or_none()
            reserve_attempt(tenant.id, username, client_address, now, rt.login_limits)
    except LoginThrottled as throttled:
        count_login("throttled")
        events.record_login_throttled(throttled.tenant_id, throttled.limits, client_address,
                                      user.id if user else None, now)
        raise
    # verify() hashes even for an unknown user: the timing tells nothing.
    valid = rt.passwords.verify(user.password_hash if user else None, password)
    if not valid or user is None or user.disabled_at is not None:
        log.info("login failed", extra={"event": "login_failed", "tenant": tenant_slug})
        count_login("invalid")
        raise InvalidCredentials()
    return PasswordChecked(tenant, signer, username, user.id, user.password_hash,
                           bool(user.second_factor) or tenant.mfa == "required")


@dataclass(frozen=True)
class Unchanged:
    """The user as step 3 found it, under the share lock."""

    password_hash: str  # as stored now (rehashed, if it was outdated)
    epoch: int  # users.sign_in_epoch
    needs_second_factor: bool  # has one now, or the tenant requires one


def confirm_unchanged(checked: PasswordChecked, password: str,
                      client_address: str | None) -> Unchanged:
    """Step 3, inside the caller's transaction: share-lock the user row, still enabled with
    the same password hash (else InvalidCredentials), and decide there whether a second
    factor is needed (a factor confirmed while the password was hashed counts: confirming
    one locks the user row); rehash an outdated hash; give the attempt's throttle
    reservation back."""
    rt = runtime()
    row = db.session.execute(
        select(has_second_factor(User.id).label("second_factor"), User.sign_in_epoch)
        .where(User.id == checked.user_id, User.disabled_at.is_(None),
               User.password_hash == checked.password_hash)
        .with_for_update(read=True, of=User)
    ).one_or_none()
    if row is None:  # disabled, or the password changed, while it was hashed
        count_login("invalid")
        raise InvalidCredentials()
    password_hash = checked.password_hash
    if rt.passwords.needs_rehash(password_hash):
        password_hash = rt.passwords.hash(password)
        db.session.execute(sa.update(User).where(User.id == checked.user_id)
                           .values(password_hash=password_hash))
    release_after_success(checked.tenant.id, checked.username, client_address)
    return Unchanged(password_hash, row.sign_in_epoch,
                     bool(row.second_factor) or checked.tenant.mfa == "required")

