"""The password grant (RFC 6749 §4.3; SPEC §4.1): a new session for a username and password.

Three short steps, so that no transaction is open while the password is hashed:
1. count the attempt (its own committed transaction, so parallel guesses on other workers
   see it: app.services.signin.throttling) and read the user;
2. verify the password (argon2, outside any transaction; an unknown user costs the same);
3. under a share lock on the user row (the user is still enabled with this very password
   hash: a disable or password change that committed meanwhile wins), start the session.
"""
from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import select

from app.extensions import db
from app.metrics import count_login
from app.models import User
from app.runtime import runtime
from app.services.accounts.credentials import normalize_username
from app.services.audit import events
from app.services.errors import InvalidCredentials
from app.services.errors import LoginThrottled
from app.services.signin.throttling import release_after_success
from app.services.signin.throttling import reserve_attempt
from app.services.tenancy.lookup import lookup_tenant
from app.services.tenancy.signing_keys import private_key
from app.services.tokens import family
from app.services.tokens.issuing import IssuedTokens
from app.services.tokens.issuing import issue
from app.services.tokens.issuing import start_session
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)


def login(
    tenant_slug: str, username: str, password: str, *, now: datetime,
    user_agent: str | None = None, client_address: str | None = None,
) -> IssuedTokens:
    """Password grant: count the attempt, verify the password, start a session."""
    rt = runtime()
    username = normalize_username(username)  # `Alice` logs in as `alice` (SPEC §11)
    user = None
    try:
        with transaction():
            tenant = lookup_tenant(tenant_slug)
            signer = private_key(tenant.kid, tenant.encrypted_key)  # 503 before any write
            user = db.session.execute(
                select(User.id, User.password_hash, User.disabled_at)
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
        grant = start_session(tenant, signer, user.id, now, user_agent, client_address)
    count_login("success")
    log.info("login", extra={"event": "login", "tenant": tenant_slug,
                             "session_id": grant.session_id})
    return issue(grant, tenant.issuer, now)
