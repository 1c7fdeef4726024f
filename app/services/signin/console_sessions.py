"""Console sessions (SPEC §14): an admin key exchanged once for a server-side browser session,
and the form tokens (CSRF) bound to it.

- **Sign-in** counts the attempt with the login throttle's counters (the whole tenant, the
  tenant and client network, the network across tenants: signin.throttling), then checks the
  key with the admin API's own check (tenancy.admin_keys.live_key), then stores the new
  session: all in one transaction, so N parallel guesses cannot slip under a limit. Only keys
  of scope `admin` open a session; an `introspect` key is told so.
- **The session** is a random 256-bit token in an HttpOnly cookie; the row holds its SHA-256
  digest, the admin key, the tenant and three times. It ends after 30 minutes idle or 12 hours
  after sign-in, whichever comes first, at sign-out, and the moment its admin key is revoked:
  every request runs one statement that finds the session by digest (a unique index), checks
  both expiries and that the key is live (its primary key), and touches last_seen_at.
- **Form tokens** are synchronizer tokens derived from the session token,
  HMAC-SHA256(K, "console session" || token) with K derived from SECRET_KEY: bound to the
  session, nothing more to store, compared in constant time, and accepted under
  SECRET_KEY_FALLBACKS too (a page rendered just before a secret change still posts). The
  sign-in form, before any session exists, is bound the same way to a random nonce kept in a
  cookie of its own (a signed double-submit token), so no site can sign a browser into a
  console of its choosing.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa

from app.crypto import b64url
from app.crypto import token_digest
from app.extensions import db
from app.logs import security_event
from app.models import ConsoleSession
from app.models.tenant import valid_slug
from app.runtime import runtime
from app.services.audit import events
from app.services.errors import AccessDenied
from app.services.errors import LoginThrottled
from app.services.errors import ScopeMissing
from app.services.errors import UnknownTenant
from app.services.signin.throttling import release_console_after_success
from app.services.signin.throttling import reserve_console_attempt
from app.services.tenancy import admin_keys
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)
IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
TOKEN_BYTES = 32  # 256 bits, like refresh tokens and admin keys
_SESSION_FORMS = b"console session\x00"
_SIGN_IN_FORM = b"console sign-in\x00"


@dataclass(frozen=True)
class ConsoleSessionInfo:
    """Who a console request acts for: the admin key, its tenant, and the session's times."""

    id: int
    tenant_id: int
    tenant_slug: str
    admin_key_id: int
    created_at: datetime
    expires_at: datetime

    @property
    def actor(self) -> events.Actor:
        """The actor of every change made through this session: its admin key."""
        return events.admin_key_actor(self.admin_key_id)


def new_token() -> str:
    """A fresh random token: a console session's, or a sign-in form's nonce."""
    return b64url(secrets.token_bytes(TOKEN_BYTES))


def sign_in(tenant_slug: str, presented_key: str, client_address: str | None,
            now: datetime) -> tuple[str, ConsoleSessionInfo]:
    """Exchange an admin key of scope `admin` for a console session: (its token, the session).

    AccessDenied for an unknown tenant or a missing, unknown, revoked or other tenant's key
    (one answer for all: no tenant or key oracle); ScopeMissing for a live `introspect` key;
    LoginThrottled past a throttle limit (the attempt is then not kept, as for logins).
    """
    token = new_token()
    session = None
    try:
        with transaction():
            tenant = _tenant_or_none(tenant_slug)
            reserve_console_attempt(tenant.id if tenant else None, client_address, now,
                                    runtime().login_limits)
            key = admin_keys.live_key(tenant.id, presented_key, now) if tenant else None
            if tenant is not None and key is not None:
                release_console_after_success(tenant.id, client_address)
                if admin_keys.has_scope(key, "admin"):
                    session = _start(tenant, key.key_id, token, now)
    except LoginThrottled as throttled:
        events.record_login_throttled(throttled.tenant_id, throttled.limits, client_address,
                                      None, now)
        raise
    if key is None:
        # The slug only when it is one: an operator may paste the key into the tenant field.
        log.info("console sign-in refused", extra={
            "event": "console_sign_in_refused",
            "tenant": tenant_slug if valid_slug(tenant_slug) else None})
        raise AccessDenied()
    if session is None:
        raise ScopeMissing("admin")
    security_event("console_signed_in", tenant=tenant_slug, admin_key_id=key.key_id,
                   console_session_id=session.id)
    return token, session


def _tenant_or_none(tenant_slug: str) -> TenantInfo | None:
    try:
        return lookup_tenant(tenant_slug)
    except UnknownTenant:
        return None


def _start(tenant: TenantInfo, admin_key_id: int, token: str,
           now: datetime) -> ConsoleSessionInfo:
    """Insert the session row (inside the sign-in's transaction)."""
    expires_at = now + ABSOLUTE
    session_id = db.session.execute(
        sa.insert(ConsoleSession).values(
            tenant_id=tenant.id, admin_key_id=admin_key_id, digest=token_digest(token),
            created_at=now, last_seen_at=now, expires_at=expires_at)
        .returning(ConsoleSession.id)
    ).scalar_one()
    return ConsoleSessionInfo(session_id, tenant.id, tenant.slug, admin_key_id, now,
                              expires_at)


# One statement per console request, two index probes: the session by digest (unique), the
# key and the tenant by primary key. Expired, idle, signed-out sessions and those of a
# revoked key all find nothing; a live one is touched (idle expiry runs from last_seen_at).
_AUTHENTICATE = sa.text(
    """
    UPDATE console_sessions s SET last_seen_at = :now
    FROM admin_keys k, tenants t
    WHERE s.digest = :digest
      AND s.expires_at > :now AND s.last_seen_at > :idle_before
      AND k.id = s.admin_key_id AND k.revoked_at IS NULL AND k.scope = 'admin'
      AND t.id = s.tenant_id
    RETURNING s.id, s.tenant_id, t.slug, s.admin_key_id, s.created_at, s.expires_at, s.digest
    """
)


def authenticate(token: str, now: datetime) -> ConsoleSessionInfo | None:
    """The live console session of this cookie token, or None (unknown, signed out, idle for
    30 minutes, older than 12 hours, or its admin key revoked)."""
    digest = token_digest(token)
    with transaction():
        row = db.session.connection().execute(
            _AUTHENTICATE, {"digest": digest, "now": now, "idle_before": now - IDLE}
        ).one_or_none()
    if row is None or not hmac.compare_digest(bytes(row.digest), digest):
        return None
    return ConsoleSessionInfo(row.id, row.tenant_id, row.slug, row.admin_key_id,
                              row.created_at, row.expires_at)


def sign_out(token: str) -> bool:
    """End the session of this token; False if there was none."""
    with transaction():
        gone = db.session.execute(
            sa.delete(ConsoleSession).where(ConsoleSession.digest == token_digest(token))
            .returning(ConsoleSession.id, ConsoleSession.tenant_id)
        ).one_or_none()
    if gone is not None:
        security_event("console_signed_out", tenant_id=gone.tenant_id,
                       console_session_id=gone.id)
    return gone is not None


# -- form tokens (CSRF) ---------------------------------------------------------------------

def _form_token(key: bytes, purpose: bytes, bound_to: str) -> str:
    return b64url(hmac.new(key, purpose + bound_to.encode("utf-8"), hashlib.sha256).digest())


def _matches(purpose: bytes, bound_to: str, presented: str) -> bool:
    if not bound_to or not presented:
        return False
    given = presented.encode("utf-8", "replace")
    # Every configured secret is tried (no early exit): the time does not say which matched.
    found = False
    for key in runtime().console_form_keys:
        expected = _form_token(key, purpose, bound_to).encode("ascii")
        found |= hmac.compare_digest(expected, given)
    return found


def form_token(session_token: str) -> str:
    """The synchronizer token of every form of a console session."""
    return _form_token(runtime().console_form_keys[0], _SESSION_FORMS, session_token)


def form_token_matches(session_token: str, presented: str) -> bool:
    return _matches(_SESSION_FORMS, session_token, presented)


def sign_in_form_token(nonce: str) -> str:
    """The token of the sign-in form, bound to the nonce in the browser's sign-in cookie."""
    return _form_token(runtime().console_form_keys[0], _SIGN_IN_FORM, nonce)


def sign_in_form_token_matches(nonce: str, presented: str) -> bool:
    return _matches(_SIGN_IN_FORM, nonce, presented)
