"""Per-worker cache of tenant settings and the current signing key (the refresh hot path).

Entries live for `TENANT_CACHE_S` (default 5 s): a `flask tenants update` (lifetimes,
reuse interval, password minimum, CORS origins) is seen by every worker within that time.
A key rotation clears the entry in the
process that ran it; other workers pick the new key up within that time, and the retired
key stays published (and accepted) for `access_ttl + TENANT_CACHE_S` so nothing it signed
in the meantime goes unverifiable. Lookups happen inside the caller's transaction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import select

from app.extensions import db
from app.models import SigningKey
from app.models import Tenant
from app.runtime import runtime

_tenants, _keys = Tenant.__table__, SigningKey.__table__
_LOOKUP = (
    select(_tenants.c.id, _tenants.c.access_ttl, _tenants.c.refresh_ttl, _tenants.c.session_ttl,
           _tenants.c.reuse_interval, _tenants.c.password_min_length, _tenants.c.cors_origins,
           _keys.c.kid, _keys.c.private_key_encrypted)
    .outerjoin(_keys, sa.and_(_keys.c.tenant_id == _tenants.c.id, _keys.c.retired_at.is_(None)))
    .where(_tenants.c.slug == sa.bindparam("slug"))
)


@dataclass(frozen=True)
class TenantInfo:
    id: int
    access_ttl: int
    refresh_ttl: int
    session_ttl: int
    reuse_interval: int
    kid: str
    encrypted_key: bytes
    password_min_length: int = 8
    cors_origins: tuple[str, ...] = ()


_cache: dict[str, tuple[float, TenantInfo]] = {}


def tenant_info(slug: str) -> TenantInfo | None:
    """The tenant's settings and current key, from the cache or one query; None if unknown."""
    now = time.monotonic()
    hit = _cache.get(slug)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = db.session.connection().execute(_LOOKUP, {"slug": slug}).one_or_none()
    if row is None:
        _cache.pop(slug, None)
        return None
    info = TenantInfo(row.id, row.access_ttl, row.refresh_ttl, row.session_ttl,
                      row.reuse_interval, row.kid, bytes(row.private_key_encrypted),
                      row.password_min_length, tuple(row.cors_origins))
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[slug] = (now + runtime().tenant_cache_s, info)
    return info


def forget(slug: str | None = None) -> None:
    """Drop one tenant's entry (after changing it in this process), or all of them."""
    if slug is None:
        _cache.clear()
    else:
        _cache.pop(slug, None)
