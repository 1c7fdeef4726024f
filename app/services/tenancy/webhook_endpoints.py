"""A tenant's webhook endpoint (SPEC §10): its URL and its signing secret, encrypted at rest.

`flask tenants set-webhook` sets or removes it; the deliverer (app.services.audit.webhooks)
sends the tenant's events there.
"""
from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.crypto import decrypt_any
from app.crypto import encrypt
from app.extensions import db
from app.models import Event
from app.models import Webhook
from app.runtime import runtime
from app.services.audit.webhooks import secret_context
from app.services.errors import InvalidInput
from app.services.errors import Missing
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction

SECRET_BYTES = 32
MAX_URL_LENGTH = 2048


def validate_url(url: str) -> str:
    """An absolute http(s) URL with a host; InvalidInput otherwise."""
    if not url or len(url) > MAX_URL_LENGTH or any(c.isspace() for c in url):
        raise InvalidInput(f"webhook URL must be 1-{MAX_URL_LENGTH} characters without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidInput(f"webhook URL {url!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("webhook URL must be an absolute http:// or https:// URL")
    if parts.username or parts.password:
        raise InvalidInput("webhook URL must not contain credentials")
    return url


def set_webhook(tenant_slug: str, url: str, now: datetime) -> str:
    """Set (or replace) the tenant's webhook; returns its new signing secret, `whsec_…`."""
    validate_url(url)
    raw = secrets.token_bytes(SECRET_BYTES)
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        tenant_id = tenant.id
        blob = encrypt(runtime().key_encryption_key, raw, secret_context(tenant_id))
        db.session.execute(
            insert(Webhook)
            .values(tenant_id=tenant_id, url=url, secret_encrypted=blob, created_at=now)
            # A new URL is a new endpoint: its health starts afresh (circuit closed).
            .on_conflict_do_update(index_elements=[Webhook.tenant_id], set_={
                "url": url, "secret_encrypted": blob, "created_at": now,
                "consecutive_failures": 0, "circuit_opened_at": None, "next_attempt_at": None,
                "last_error": None})
        )
    return "whsec_" + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class EndpointState:
    """A webhook endpoint's delivery health (`flask events endpoints`); never its secret."""

    tenant: str
    url: str
    pending: int  # events still owed to it
    consecutive_failures: int
    circuit_opened_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None


_ENDPOINTS = sa.text("""
    SELECT t.slug, w.url, w.consecutive_failures, w.circuit_opened_at, w.next_attempt_at,
           w.last_error,
           (SELECT count(*) FROM events e
            WHERE e.tenant_id = w.tenant_id AND e.delivery = 'pending') AS pending
    FROM webhooks w JOIN tenants t ON t.id = w.tenant_id
    WHERE NOT :failing OR w.consecutive_failures > 0
    ORDER BY w.consecutive_failures DESC, t.slug
""")


def endpoint_states(failing_only: bool = False) -> list[EndpointState]:
    """Every webhook endpoint (or only those failing), the most failures first."""
    with transaction():
        rows = db.session.execute(_ENDPOINTS, {"failing": failing_only}).all()
    return [EndpointState(r.slug, r.url, r.pending, r.consecutive_failures,
                          r.circuit_opened_at, r.next_attempt_at, r.last_error) for r in rows]


def reencrypt_secrets() -> tuple[int, int]:
    """Move every webhook secret to the current SECRET_KEY (`flask keys reencrypt`).

    Returns (re-encrypted, undecryptable). One row lock at a time; few rows (one per tenant).
    """
    keks = runtime().key_encryption_keys
    moved = failed = 0
    with transaction():
        rows = db.session.execute(
            select(Webhook.tenant_id, Webhook.secret_encrypted).with_for_update()).all()
        for row in rows:
            try:
                raw, index = decrypt_any(keks, bytes(row.secret_encrypted),
                                         secret_context(row.tenant_id))
            except InvalidTag:
                failed += 1
                continue
            if index:
                db.session.execute(sa.update(Webhook).where(Webhook.tenant_id == row.tenant_id)
                                   .values(secret_encrypted=encrypt(keks[0], raw,
                                                                    secret_context(row.tenant_id))))
                moved += 1
    return moved, failed


def disable_webhook(tenant_slug: str) -> int:
    """Remove the tenant's webhook; events still owed to it become undeliverable ('none').

    Returns how many pending events were dropped from the queue.
    """
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        tenant_id = tenant.id
        removed = db.session.execute(  # type: ignore[attr-defined]
            sa.delete(Webhook).where(Webhook.tenant_id == tenant_id)).rowcount
        if not removed:
            raise Missing(f"tenant {tenant_slug!r} has no webhook")
        return db.session.execute(
            sa.update(Event).where(Event.tenant_id == tenant_id, Event.delivery == "pending")
            .values(delivery="none", next_attempt_at=None, lease_until=None, lease_token=None)
        ).rowcount  # type: ignore[attr-defined]
