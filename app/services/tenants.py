"""Tenants: creation (with the first signing key) and listing."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from app.errors import InvalidRequest
from app.extensions import db
from app.models import Tenant
from app.models.tenant import MAX_REUSE_INTERVAL
from app.models.tenant import SLUG_PATTERN
from app.services.database import transaction
from app.services.keys import add_signing_key

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


def validate_settings(settings: TenantSettings) -> None:
    """Raise InvalidRequest with one clear sentence for a bad setting."""
    # fullmatch: the pattern's `$` alone would accept a trailing newline.
    if not re.fullmatch(SLUG_PATTERN, settings.slug):
        raise InvalidRequest(
            "slug must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    for name in ("access_ttl", "refresh_ttl", "session_ttl"):
        if getattr(settings, name) <= 0:
            raise InvalidRequest(f"{name} must be a positive number of seconds")
    if not 0 <= settings.reuse_interval <= MAX_REUSE_INTERVAL:
        raise InvalidRequest(f"reuse interval must be between 0 and {MAX_REUSE_INTERVAL} seconds")


def create_tenant(settings: TenantSettings, now: datetime) -> int:
    """Create a tenant and its first signing key in one transaction; returns its id."""
    validate_settings(settings)
    with transaction():
        taken = db.session.execute(select(Tenant.id).where(Tenant.slug == settings.slug)).first()
        if taken is not None:
            raise InvalidRequest(f"tenant {settings.slug!r} already exists")
        tenant = Tenant(
            slug=settings.slug, name=settings.name, access_ttl=settings.access_ttl,
            refresh_ttl=settings.refresh_ttl, session_ttl=settings.session_ttl,
            reuse_interval=settings.reuse_interval, created_at=now,
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
                           t.reuse_interval)
            for t in rows
        ]


def tenant_exists(slug: str) -> bool:
    with transaction():
        return db.session.execute(select(Tenant.id).where(Tenant.slug == slug)).first() is not None
