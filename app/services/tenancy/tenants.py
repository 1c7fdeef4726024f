"""Tenants: creation (with the first signing key), settings updates and listing."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from dataclasses import fields
from dataclasses import replace
from datetime import datetime
from typing import Any
from typing import Iterable
from urllib.parse import SplitResult
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Tenant
from app.models.tenant import MAX_PASSWORD_LENGTH
from app.models.tenant import MAX_REUSE_INTERVAL
from app.models.tenant import MAX_STEP_UP_MAX_AGE
from app.models.tenant import valid_slug
from app.services.errors import InvalidInput
from app.services.errors import TenantExists
from app.services.errors import Unavailable
from app.services.errors import UnknownTenant
from app.services.tenancy import lookup
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.tenancy.lookup import rp_id_in_effect
from app.services.tenancy.signing_keys import add_signing_key
from app.services.unit_of_work import transaction

DEFAULT_ACCESS_TTL = 900
DEFAULT_REFRESH_TTL = 14 * 24 * 3600
DEFAULT_SESSION_TTL = 30 * 24 * 3600
DEFAULT_REUSE_INTERVAL = 10
DEFAULT_PASSWORD_MIN_LENGTH = 8
DEFAULT_STEP_UP_MAX_AGE = 900


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
    mfa: str = "optional"  # or "required" (SPEC §13.3)
    password_grant: bool = True
    step_up_max_age: int = DEFAULT_STEP_UP_MAX_AGE
    webauthn_rp_id: str | None = None  # None: the host of BATON_BASE_URL
    webauthn_origins: tuple[str, ...] = ()

    @classmethod
    def of(cls, tenant: Tenant) -> TenantSettings:
        """The settings of a tenant row."""
        values = {f.name: getattr(tenant, f.name) for f in fields(cls)}
        for name in _LIST_SETTINGS:
            values[name] = tuple(values[name])
        return cls(**values)

    def column_values(self, names: Iterable[str]) -> dict[str, Any]:
        """The named settings as values for the tenant row."""
        return {name: list(getattr(self, name)) if name in _LIST_SETTINGS else getattr(self, name)
                for name in names}


_LIST_SETTINGS = ("cors_origins", "webauthn_origins")
MFA_POLICIES = ("optional", "required")
_HOST = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                   r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


def normalize_origin(origin: str, what: str = "cors origin") -> str:
    """A browser origin as browsers send it (`https://app.example`, no path); InvalidInput."""
    try:
        parts: SplitResult | None = urlsplit(origin)
        port = parts.port if parts else None
    except ValueError:
        parts = port = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.username or parts.password or parts.path or parts.query or parts.fragment
            or origin.endswith(("#", "?"))):
        raise InvalidInput(f"{what} {origin!r} must look like https://app.example.com")
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
    if settings.mfa not in MFA_POLICIES:
        raise InvalidInput(f"mfa must be one of {', '.join(MFA_POLICIES)}")
    if not 1 <= settings.step_up_max_age <= MAX_STEP_UP_MAX_AGE:
        raise InvalidInput(f"step-up max age must be 1 to {MAX_STEP_UP_MAX_AGE} seconds")
    _validate_relying_party(settings)


def _validate_relying_party(settings: TenantSettings) -> None:
    """SPEC §13.5: a host name as RP ID, and every origin on it (WebAuthn §5.1.4.1 requires
    the RP ID to be the origin's host or a registrable suffix of it)."""
    rp_id = settings.webauthn_rp_id
    if rp_id is not None and not _HOST.fullmatch(rp_id):
        raise InvalidInput(f"webauthn rp id {rp_id!r} must be a host name like example.com "
                           "(no scheme, port or path)")
    for origin in settings.webauthn_origins:
        host = urlsplit(origin).hostname or ""
        if rp_id and host != rp_id and not host.endswith("." + rp_id):
            raise InvalidInput(f"webauthn origin {origin!r} is not on the rp id {rp_id!r} "
                               "(its host must be the rp id or end with .rp-id)")


def relying_party_warnings(settings: TenantSettings) -> list[str]:
    """What in valid passkey settings no browser will accept, one sentence each.

    Not refused: a client with its own WebAuthn stack (a software authenticator, a test
    harness) can sign for an address or over http, and SPEC §13.5 lets the RP ID default to
    BATON_BASE_URL's host, which is an address under `make run`."""
    if not settings.webauthn_origins:
        return []
    rp_id = settings.webauthn_rp_id
    in_effect = rp_id_in_effect(rp_id, current_app.config["BASE_URL"])
    named = repr(rp_id) if rp_id else f"{in_effect!r} (the host of BATON_BASE_URL)"
    warnings = []
    if _is_address(in_effect):
        warnings.append(f"the rp id in effect, {named}, is an address: browsers refuse it "
                        "(set --webauthn-rp-id, e.g. localhost)")
    for origin in settings.webauthn_origins:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        if host != in_effect and not host.endswith("." + in_effect):
            warnings.append(f"webauthn origin {origin!r} is not on the rp id in effect, {named}: "
                            "browsers will refuse the ceremony")
        if parts.scheme != "https" and host != "localhost" and not host.endswith(".localhost"):
            warnings.append(f"webauthn origin {origin!r} is not https: browsers offer WebAuthn "
                            "over http on localhost only")
    return warnings


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _normalized(settings: TenantSettings) -> TenantSettings:
    return replace(
        settings,
        cors_origins=tuple(normalize_origin(o) for o in settings.cors_origins),
        webauthn_origins=tuple(normalize_origin(o, "webauthn origin")
                               for o in settings.webauthn_origins),
        webauthn_rp_id=settings.webauthn_rp_id.lower() if settings.webauthn_rp_id else None)


def create_tenant(settings: TenantSettings, now: datetime) -> int:
    """Create a tenant and its first signing key in one transaction; returns its id."""
    settings = _normalized(settings)
    validate_settings(settings)
    with transaction():
        taken = db.session.execute(select(Tenant.id).where(Tenant.slug == settings.slug)).first()
        if taken is not None:
            raise TenantExists(settings.slug)
        tenant = Tenant(created_at=now,
                        **settings.column_values(f.name for f in fields(TenantSettings)))
        db.session.add(tenant)
        db.session.flush()
        add_signing_key(tenant.id, now)
        return tenant.id


def list_tenants() -> list[TenantSettings]:
    with transaction():
        rows = db.session.scalars(select(Tenant).order_by(Tenant.slug)).all()
        return [TenantSettings.of(t) for t in rows]


def update_tenant(slug: str, **changes: Any) -> TenantSettings:
    """Change some settings of a tenant (the names of TenantSettings); returns the new settings.

    Other workers see the change within TENANT_CACHE_S (lookup.py); this one at once.
    """
    unknown = set(changes) - {f.name for f in fields(TenantSettings)} | ({"slug"} & set(changes))
    if unknown:
        raise InvalidInput(f"unknown tenant setting(s): {', '.join(sorted(unknown))}")
    with transaction():
        found = lookup_tenant(slug)
        tenant = db.session.execute(
            select(Tenant).where(Tenant.id == found.id).with_for_update()
        ).scalar_one()
        updated = _normalized(replace(TenantSettings.of(tenant), **changes))
        validate_settings(updated)
        db.session.execute(sa.update(Tenant).where(Tenant.id == tenant.id)
                           .values(**updated.column_values(changes)))
    lookup.forget(slug)
    return updated


def tenant_settings(slug: str) -> TenantSettings:
    """The tenant's settings as stored (not the per-worker cache): the console shows them."""
    with transaction():
        found = lookup_tenant(slug)
        tenant = db.session.execute(select(Tenant).where(Tenant.id == found.id)).scalar_one()
        return TenantSettings.of(tenant)


def tenant_exists(slug: str) -> bool:
    try:
        with transaction():
            lookup_tenant(slug)
            return True
    except UnknownTenant:
        return False


def describe(slug: str) -> TenantInfo:
    """The tenant's cached settings (metadata, policy); UnknownTenant if there is none."""
    with transaction():
        return lookup_tenant(slug)


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
