"""Admin keys (SPEC §9): created and shown once, stored as SHA-256 digests, scoped, revocable.

A key is `bat_` + 256 random bits (base64url). Only its digest is stored, so a copy of the
database (a backup, a replica, a leaked dump) grants nothing: the digest cannot be presented.
SHA-256 without salt or stretching is enough because the key is random, not chosen by a
person (the same reasoning as refresh tokens, docs/design.md).
"""
from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import select

from app.crypto import b64url
from app.crypto import token_digest
from app.extensions import db
from app.logs import security_event
from app.models import AdminKey
from app.models.admin_key import SCOPES
from app.services.audit import events
from app.services.errors import AccessDenied
from app.services.errors import InvalidInput
from app.services.errors import Missing
from app.services.errors import ScopeMissing
from app.services.errors import UnknownTenant
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)
PREFIX = "bat_"
KEY_BYTES = 32  # 256 bits
MAX_NAME_LENGTH = 200
TOUCH_EVERY_S = 60  # last_used_at is written at most once a minute per key


@dataclass(frozen=True)
class AdminKeyInfo:
    """What `admin-keys list` shows: never the key."""

    id: int
    name: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class AdminPrincipal:
    """The key a request authenticated with."""

    key_id: int
    tenant_id: int
    scope: str


def new_admin_key() -> str:
    return PREFIX + b64url(secrets.token_bytes(KEY_BYTES))


def create_key(tenant_slug: str, name: str | None, scope: str, now: datetime) -> tuple[int, str]:
    """Create a key for the tenant; returns (id, key). The key itself is never stored."""
    if scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}")
    name = (name or "").strip() or f"{scope} key"
    if len(name) > MAX_NAME_LENGTH or "\x00" in name:
        raise InvalidInput(f"name must be at most {MAX_NAME_LENGTH} characters, no NUL")
    key = new_admin_key()
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        tenant_id = tenant.id
        key_id = db.session.execute(
            sa.insert(AdminKey).values(tenant_id=tenant_id, name=name, scope=scope,
                                       digest=token_digest(key), created_at=now)
            .returning(AdminKey.id)
        ).scalar_one()
        events.record_event(events.ADMIN_KEY_CREATED, tenant_id, events.CLI,
                            {"admin_key_id": str(key_id), "scope": scope}, now)
    security_event("admin_key_created", tenant=tenant_slug, admin_key_id=key_id, scope=scope)
    return key_id, key


def list_keys(tenant_slug: str) -> list[AdminKeyInfo]:
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        rows = db.session.execute(
            select(AdminKey.id, AdminKey.name, AdminKey.scope, AdminKey.created_at,
                   AdminKey.last_used_at, AdminKey.revoked_at)
            .where(AdminKey.tenant_id == tenant.id).order_by(AdminKey.id)
        ).all()
    return [AdminKeyInfo(*row) for row in rows]


def revoke_key(tenant_slug: str, key_id: int, now: datetime) -> bool:
    """Revoke a key of the tenant; False if it was already revoked; Missing if not the tenant's."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        tenant_id = tenant.id
        row = db.session.execute(
            select(AdminKey.revoked_at).where(AdminKey.id == key_id,
                                              AdminKey.tenant_id == tenant_id).with_for_update()
        ).one_or_none()
        if row is None:
            raise Missing(f"no admin key {key_id} in tenant {tenant_slug!r}")
        if row.revoked_at is not None:
            return False
        db.session.execute(sa.update(AdminKey).where(AdminKey.id == key_id)
                           .values(revoked_at=now))
        events.record_event(events.ADMIN_KEY_REVOKED, tenant_id, events.CLI,
                            {"admin_key_id": str(key_id)}, now)
    security_event("admin_key_revoked", tenant=tenant_slug, admin_key_id=key_id)
    return True


# One round trip: find the live key of this tenant by digest, and touch last_used_at only
# when it is older than a minute. Unknown, revoked and other tenants' keys all take the
# same path (one index lookup that finds nothing), so their failures cost the same.
# Concurrent requests on a stale key: the first UPDATE wins; the others re-check the WHERE
# after its commit and write nothing.
_AUTHENTICATE = sa.text(
    """
    WITH found AS (
        SELECT k.id, k.tenant_id, k.scope, k.digest
        FROM admin_keys k
        WHERE k.digest = :digest AND k.tenant_id = :tenant_id AND k.revoked_at IS NULL
    ), touched AS (
        UPDATE admin_keys SET last_used_at = :now
        WHERE id = (SELECT id FROM found)
          AND (last_used_at IS NULL OR last_used_at < :stale_before)
        RETURNING id
    )
    SELECT id, tenant_id, scope, digest FROM found
    """
)


def live_key(tenant_id: int, presented: str, now: datetime) -> AdminPrincipal | None:
    """The live key of this tenant that `presented` is, or None (inside the caller's
    transaction); touches last_used_at at most once a minute. The one key check, shared by
    the admin API and the console's sign-in."""
    digest = token_digest(presented)
    row = db.session.connection().execute(_AUTHENTICATE, {
        "digest": digest, "tenant_id": tenant_id, "now": now,
        "stale_before": now - timedelta(seconds=TOUCH_EVERY_S),
    }).one_or_none()
    if row is None or not hmac.compare_digest(bytes(row.digest), digest):
        return None
    return AdminPrincipal(row.id, row.tenant_id, row.scope)


def has_scope(key: AdminPrincipal, scope: str) -> bool:
    """`admin` includes `introspect`."""
    return key.scope == "admin" or key.scope == scope


def authenticate(tenant_slug: str, presented: str, scope: str, now: datetime) -> AdminPrincipal:
    """The key's principal if it is a live key of this tenant with `scope`.

    AccessDenied for a missing, unknown, revoked or other tenant's key; ScopeMissing for a
    valid key without the scope (`admin` includes `introspect`).
    """
    try:
        with transaction():
            tenant = lookup_tenant(tenant_slug)
            key = live_key(tenant.id, presented, now)
    except UnknownTenant:
        key = None  # no key belongs to it: 401 like any bad key, not a tenant oracle
    if key is None:
        log.info("admin key rejected", extra={"event": "admin_key_rejected",
                                              "tenant": tenant_slug})
        raise AccessDenied()
    if not has_scope(key, scope):
        raise ScopeMissing(scope)
    return key
