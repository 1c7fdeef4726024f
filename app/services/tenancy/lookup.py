"""The one tenant resolution path: `lookup_tenant(slug)` (SPEC §4, §5).

Every endpoint and service names a tenant by its slug and resolves it here, inside the
transaction the service opened (app.services.unit_of_work): the tenant's settings and
current signing key, or UnknownTenant, raised nowhere else. The settings come from a
per-app TTL cache (`app.extensions["baton_tenants"]`, TENANT_CACHE_S, default 5 s): a `flask tenants
update` is seen by every worker within that time. A key rotation drops the entry in the
process that ran it; other workers pick the new key up within that time, and the retired
key stays published (and accepted) for `access_ttl + TENANT_CACHE_S`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import urlsplit

import sqlalchemy as sa
from cachetools import TTLCache
from flask import Flask
from flask import current_app
from flask import has_request_context
from flask import request
from sqlalchemy import select

from app.extensions import db
from app.models import SigningKey
from app.models import Tenant
from app.models.tenant import valid_slug
from app.services.errors import UnknownTenant

EXTENSION = "baton_tenants"
MAX_CACHED_TENANTS = 10_000

_tenants, _keys = Tenant.__table__, SigningKey.__table__
_LOOKUP = (
    select(_tenants.c.id, _tenants.c.access_ttl, _tenants.c.refresh_ttl, _tenants.c.session_ttl,
           _tenants.c.reuse_interval, _keys.c.kid, _keys.c.private_key_encrypted,
           _tenants.c.password_min_length, _tenants.c.cors_origins, _tenants.c.name,
           _tenants.c.mfa, _tenants.c.password_grant, _tenants.c.step_up_max_age,
           _tenants.c.webauthn_rp_id, _tenants.c.webauthn_origins,
           _tenants.c.webauthn_decoy_key)
    .outerjoin(_keys, sa.and_(_keys.c.tenant_id == _tenants.c.id, _keys.c.retired_at.is_(None)))
    .where(_tenants.c.slug == sa.bindparam("slug"))
)


@dataclass(frozen=True)
class TenantInfo:
    """A tenant's settings and current signing key, as the services use them."""

    id: int
    slug: str
    access_ttl: int
    refresh_ttl: int
    session_ttl: int
    reuse_interval: int
    kid: str
    encrypted_key: bytes
    password_min_length: int = 8
    cors_origins: tuple[str, ...] = ()
    name: str = ""
    mfa: str = "optional"  # or "required" (SPEC §13.3)
    password_grant: bool = True
    step_up_max_age: int = 900
    webauthn_rp_id: str | None = None  # None: the host of BATON_BASE_URL (SPEC §13.5)
    webauthn_origins: tuple[str, ...] = ()
    # Never shown, not even in a repr: app.services.accounts.webauthn.decoy_credentials.
    webauthn_decoy_key: bytes = field(default=b"", repr=False)

    @property
    def issuer(self) -> str:
        """`iss` and the metadata base: `{BASE_URL}/v1/tenants/{slug}`.

        BASE_URL is required in production, so nothing a client sends chooses it; only
        development and test fall back to the request's own URL.
        """
        base = current_app.config["BASE_URL"]
        if not base and has_request_context():
            base = request.url_root.rstrip("/")
        return f"{base}/v1/tenants/{self.slug}"


def rp_id_in_effect(rp_id: str | None, base_url: str) -> str:
    """A tenant's WebAuthn RP ID: `--webauthn-rp-id`, else the host of BASE_URL (SPEC §13.5);
    `base_url` is BATON_BASE_URL or an issuer under it."""
    return rp_id or urlsplit(base_url).hostname or ""


class TenantCache:
    """The app's tenant settings cache; a lock because TTLCache is not thread-safe."""

    def __init__(self, ttl_s: float) -> None:
        self._entries: TTLCache[str, TenantInfo] = TTLCache(MAX_CACHED_TENANTS, ttl_s)
        self._lock = threading.Lock()

    def get(self, slug: str) -> TenantInfo | None:
        with self._lock:
            return self._entries.get(slug)

    def put(self, info: TenantInfo) -> None:
        with self._lock:
            self._entries[info.slug] = info

    def forget(self, slug: str | None = None) -> None:
        with self._lock:
            if slug is None:
                self._entries.clear()
            else:
                self._entries.pop(slug, None)


def init_tenant_cache(app: Flask, ttl_s: float) -> None:
    app.extensions[EXTENSION] = TenantCache(ttl_s)


def _cache() -> TenantCache:
    cache: TenantCache = current_app.extensions[EXTENSION]
    return cache


def lookup_tenant(slug: str) -> TenantInfo:
    """The tenant, from the cache or one query inside the caller's transaction (so that
    `db.session.begin()` comes first: a query before it would begin one implicitly)."""
    if not valid_slug(slug):
        raise UnknownTenant(slug)  # no query for what can never be a slug
    cache = _cache()
    info = cache.get(slug)
    if info is not None:
        return info
    row = db.session.connection().execute(_LOOKUP, {"slug": slug}).one_or_none()
    if row is None:
        raise UnknownTenant(slug)
    info = TenantInfo(row.id, slug, row.access_ttl, row.refresh_ttl, row.session_ttl,
                      row.reuse_interval, row.kid, bytes(row.private_key_encrypted),
                      row.password_min_length, tuple(row.cors_origins), row.name, row.mfa,
                      row.password_grant, row.step_up_max_age, row.webauthn_rp_id,
                      tuple(row.webauthn_origins), bytes(row.webauthn_decoy_key))
    cache.put(info)
    return info


def forget(slug: str | None = None) -> None:
    """Drop one tenant's entry (after changing it in this process), or all of them."""
    _cache().forget(slug)
