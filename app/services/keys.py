"""Per-tenant Ed25519 signing keys (SPEC §6): creation, rotation, JWKS, a decrypted-key cache."""
from __future__ import annotations

from datetime import datetime
from datetime import timedelta
from functools import lru_cache

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.crypto import decrypt
from app.crypto import encrypt
from app.crypto import load_ed25519_private
from app.crypto import new_ed25519_key
from app.errors import NotFound
from app.extensions import db
from app.models import SigningKey
from app.models import Tenant
from app.runtime import runtime
from app.services import events
from app.services.database import transaction
from app.services.tenant_cache import forget
from app.services.tenant_cache import tenant_info


def retention_window(access_ttl: int) -> timedelta:
    """How long a retired key stays published and accepted.

    A worker may sign with a key for up to TENANT_CACHE_S after its retirement (the
    settings cache), and such a token lives access_ttl more seconds.
    """
    return timedelta(seconds=access_ttl + runtime().tenant_cache_s)


def _context(kid: str) -> bytes:
    # Binds the ciphertext to its kid: a blob copied onto another key row will not decrypt.
    return b"baton-signing-key:" + kid.encode()


def add_signing_key(tenant_id: int, now: datetime) -> str:
    """Insert a new current key for the tenant (in the caller's transaction); returns its kid."""
    raw_private, jwk = new_ed25519_key()
    kid = jwk["kid"]
    db.session.add(
        SigningKey(
            tenant_id=tenant_id,
            kid=kid,
            private_key_encrypted=encrypt(runtime().key_encryption_key, raw_private, _context(kid)),
            public_jwk=jwk,
            created_at=now,
        )
    )
    return kid


@lru_cache(maxsize=1024)
def _decrypted(kid: str, blob: bytes, kek: bytes) -> Ed25519PrivateKey:
    return load_ed25519_private(decrypt(kek, blob, _context(kid)))


def private_key(kid: str, encrypted: bytes) -> Ed25519PrivateKey:
    """The decrypted private key, cached per worker (a kid's key never changes)."""
    return _decrypted(kid, bytes(encrypted), runtime().key_encryption_key)


def rotate_key(tenant_slug: str, now: datetime) -> str:
    """Retire the tenant's current key and add a new one; returns the new kid."""
    with transaction():
        tenant = db.session.execute(
            select(Tenant).where(Tenant.slug == tenant_slug).with_for_update()
        ).scalar_one_or_none()
        if tenant is None:
            raise NotFound(f"unknown tenant {tenant_slug!r}")
        db.session.execute(
            sa.update(SigningKey)
            .where(SigningKey.tenant_id == tenant.id, SigningKey.retired_at.is_(None))
            .values(retired_at=now)
        )
        # Flush the retirement before the insert: one current key per tenant (partial unique).
        db.session.flush()
        kid = add_signing_key(tenant.id, now)
        events.record_event(events.SIGNING_KEY_ROTATED, tenant.id, events.CLI, {"kid": kid}, now)
    forget(tenant_slug)  # this worker signs with the new key at once; others within the TTL
    return kid


def published_keys(tenant_slug: str, now: datetime) -> list[dict]:
    """Public JWKs: the current key and retired keys whose tokens may still be unexpired."""
    with transaction():
        tenant = tenant_info(tenant_slug)
        if tenant is None:
            raise NotFound("Unknown tenant.")
        still_needed = now - retention_window(tenant.access_ttl)
        rows = db.session.scalars(
            select(SigningKey.public_jwk)
            .where(
                SigningKey.tenant_id == tenant.id,
                sa.or_(SigningKey.retired_at.is_(None), SigningKey.retired_at > still_needed),
            )
            .order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
        ).all()
    return list(rows)
