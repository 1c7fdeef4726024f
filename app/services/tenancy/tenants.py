"""Tenants: creation (with the first signing key), settings updates and listing."""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import SplitResult
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import select

from app.extensions import db
from app.models import Tenant
from app.models.tenant import MAX_PASSWORD_LENGTH
from app.models.tenant import MAX_REUSE_INTERVAL
from app.models.tenant import valid_slug
from app.services.accounts.credentials import DEFAULT_PASSWORD_MIN_LENGTH
from app.services.errors import InvalidInput
from app.services.errors import TenantExists
from app.services.errors import Unavailable
from app.services.errors import UnknownTenant
from app.services.tenancy import lookup
from app.services.tenancy.lookup import lookup_tenant
from app.services.tenancy.signing_keys import add_signing_key
from app.services.unit_of_work import transaction

DEFAULT_ACCESS_TTL = 900
DEFAULT_REFRESH_TTL = 14 * 24 * 3600
DEFAULT_SESSION_TTL = 30 * 24 * 3600
DEFAULT_REUSE_INTERVAL = 10


@dataclass(frozen=True)
class TenantSettings:
    slug: str
    name: str
    access_ttl: int = DEFAULT_ACCESS_TTL
    refresh_ttl: int = DEFAULT_REFRESH_TTL
    session_ttl: int = DEFAULT_SESSION_TTL
    reuse_interval: int = DEFAULT_REUSE_INTERVAL
    password_min_length: int = DEFAULT_PASSWORD_MIN_LENGTH
    cors_origins: tuple[str, ...] = ()


def normalize_origin(origin: str) -> str:
    """A browser origin as browsers send it (`https://app.example`, no path); InvalidInput."""
    try:
        parts: SplitResult | None = urlsplit(origin)
        port = parts.port if parts else None
    except ValueError:
        parts = port = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.username or parts.password or parts.path or parts.query or parts.fragment
            or origin.endswith(("#", "?"))):
        raise InvalidInput(f"cors origin {origin!r} must look like https://app.example.com")
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port is not None else "")


def validate_settings(settings: TenantSettings) -> None:
    """Raise InvalidInput with one clear sentence for a bad setting."""
    if not valid_slug(settings.slug):
        raise InvalidInput(
            "slug must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    for name in ("access_ttl", "refresh_ttl", "session_ttl"):
        if getattr(settings, name) <= 0:
            raise InvalidInput(f"{name} must be a positive number of seconds")
    if not 0 <= settings.reuse_interval <= MAX_REUSE_INTERVAL:
        raise InvalidInput(f"reuse interval must be between 0 and {MAX_REUSE_INTERVAL} seconds")
    if not 1 <= settings.password_min_length <= MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password minimum length must be 1 to {MAX_PASSWORD_LENGTH}")


def create_tenant(settings: TenantSettings, now: datetime) -> int:
    """Create a tenant and its first signing key in one transaction; returns its id."""
    settings = replace(settings, cors_origins=tuple(map(normalize_origin, settings.cors_origins)))
    validate_settings(settings)
    with transaction():
        taken = db.session.execute(select(Tenant.id).where(Tenant.slug == settings.slug)).first()
        if taken is not None:
            raise TenantExists(settings.slug)
        tenant = Tenant(
            slug=settings.slug, name=settings.name, access_ttl=settings.access_ttl,
            refresh_ttl=settings.refresh_ttl, session_ttl=settings.session_ttl,
            reuse_interval=settings.reuse_interval, created_at=now,
            password_min_length=settings.password_min_length,
            cors_origins=list(settings.cors_origins),
        )
        db.session.add(tenant)
        db.session.flush()
        add_signing_key(tenant.id, now)
        return tenant.id


def list_tenants() -> list[TenantSettings]:
    with transaction():
        rows = db.session.scalars(select(Tenant).order_by(Tenant.slug)).all()
        return [
            TenantSettings(t.slug, t.name, t.access_ttl, t.refresh_ttl, t.session_ttl,
                           t.reuse_interval, t.password_min_length, tuple(t.cors_origins))
            for t in rows
        ]


def update_tenant(slug: str, **changes: Any) -> TenantSettings:
    """Change some settings of a tenant (the names of TenantSettings); returns the new settings.

    Other workers see the change within TENANT_CACHE_S (tenant_cache.py); this one at once.
    """
    unknown = set(changes) - {f.name for f in fields(TenantSettings)} | ({"slug"} & set(changes))
    if unknown:
        raise InvalidInput(f"unknown tenant setting(s): {', '.join(sorted(unknown))}")
    if "cors_origins" in changes:
        changes["cors_origins"] = tuple(map(normalize_origin, changes["cors_origins"]))
    with transaction():
        found = lookup_tenant(slug)
        tenant = db.session.execute(
            select(Tenant).where(Tenant.id == found.id).with_for_update()
        ).scalar_one()
        current = TenantSettings(tenant.slug, tenant.name, tenant.access_ttl, tenant.refresh_ttl,
                                 tenant.session_ttl, tenant.reuse_interval,
                                 tenant.password_min_length, tuple(tenant.cors_origins))
        updated = replace(current, **changes)
        validate_settings(updated)
        values = {name: getattr(updated, name) for name in changes}
        if "cors_origins" in values:
            values["cors_origins"] = list(values["cors_origins"])
        db.session.execute(sa.update(Tenant).where(Tenant.id == tenant.id).values(**values))
    lookup.forget(slug)
    return updated


def tenant_exists(slug: str) -> bool:
    try:
        with transaction():
            lookup_tenant(slug)
            return True
    except UnknownTenant:
        return False


def issuer(slug: str) -> str:
    """The tenant's issuer (`iss`, the metadata base); UnknownTenant if there is none."""
    with transaction():
        tenant = lookup_tenant(slug)
        return tenant.issuer


def cors_origins(slug: str) -> tuple[str, ...]:
    """The tenant's allowed browser origins (cached like its other settings); () if unknown.

    Called after the view answered: a database fault here must not turn that answer into an
    error, so it only drops the CORS headers.
    """
    try:
        with transaction():
            tenant = lookup_tenant(slug)
            return tenant.cors_origins
    except (Unavailable, UnknownTenant):
        return ()
