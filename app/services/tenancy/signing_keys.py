"""Per-tenant Ed25519 signing keys (SPEC §6): creation, rotation, JWKS, a decrypted-key cache."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from functools import lru_cache

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from app.crypto import decrypt_any
from app.crypto import encrypt
from app.crypto import load_ed25519_private
from app.crypto import new_ed25519_key
from app.extensions import db
from app.models import SigningKey
from app.models import Tenant
from app.runtime import runtime
from app.services.audit import events
from app.services.errors import KeyUnavailable
from app.services.tenancy.lookup import forget
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)
# How many of the newest signing keys /readyz tries (see secrets_ready).
READINESS_SAMPLE = 5


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
def _decrypted(kid: str, blob: bytes, keks: tuple[bytes, ...]) -> tuple[Ed25519PrivateKey, int]:
    """The key and the index of the secret that decrypted it; InvalidTag if none does."""
    raw, index = decrypt_any(keks, blob, _context(kid))
    return load_ed25519_private(raw), index


def private_key(kid: str, encrypted: bytes) -> Ed25519PrivateKey:
    """The decrypted private key, cached per worker (a kid's key never changes).

    Tries SECRET_KEY, then each of SECRET_KEY_FALLBACKS. KeyUnavailable (503) when none
    decrypts it: callers decrypt before they write anything.
    """
    try:
        return _decrypted(kid, bytes(encrypted), runtime().key_encryption_keys)[0]
    except (InvalidTag, ValueError):
        log.error("signing key %s cannot be decrypted with any configured secret "
                  "(SECRET_KEY / SECRET_KEY_FALLBACKS)", kid,
                  extra={"event": "signing_key_undecryptable", "kid": kid})
        raise KeyUnavailable() from None


def rotate_key(tenant_slug: str, now: datetime) -> str:
    """Retire the tenant's current key and add a new one; returns the new kid."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        db.session.execute(
            # FOR NO KEY UPDATE: serializes rotations of this tenant without conflicting with
            # the FOR KEY SHARE locks that every insert referencing the tenant takes, so
            # logins and refreshes do not wait while a key rotates.
            select(Tenant.id).where(Tenant.id == tenant.id).with_for_update(key_share=True)
        )
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
        tenant = lookup_tenant(tenant_slug)
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


@dataclass(frozen=True)
class ReencryptReport:
    reencrypted: int = 0
    current: int = 0  # already under SECRET_KEY
    undecryptable: tuple[str, ...] = ()  # kids no configured secret decrypts


def reencrypt_keys(batch_size: int = 100) -> ReencryptReport:
    """Move every private key to the current SECRET_KEY (`flask keys reencrypt`).

    Short batches by id, each row locked while it is rewritten; the public half, the kid
    and the key itself are unchanged, so nothing signed before becomes unverifiable.
    """
    keks = runtime().key_encryption_keys
    reencrypted = current = 0
    undecryptable: list[str] = []
    after = 0
    while True:
        with transaction():
            rows = db.session.execute(
                select(SigningKey.id, SigningKey.kid, SigningKey.private_key_encrypted)
                .where(SigningKey.id > after).order_by(SigningKey.id).limit(batch_size)
                .with_for_update(key_share=True)
            ).all()
            for row in rows:
                try:
                    key, index = _decrypted(row.kid, bytes(row.private_key_encrypted), keks)
                except (InvalidTag, ValueError):
                    undecryptable.append(row.kid)
                    continue
                if index == 0:
                    current += 1
                    continue
                raw = key.private_bytes_raw()
                db.session.execute(
                    sa.update(SigningKey).where(SigningKey.id == row.id)
                    .values(private_key_encrypted=encrypt(keks[0], raw, _context(row.kid))))
                reencrypted += 1
        if not rows:
            break
        after = rows[-1].id
    forget()  # this worker's cached blobs are the old ones
    return ReencryptReport(reencrypted, current, tuple(undecryptable))


def secrets_ready() -> bool:
    """Can this node's secrets decrypt the signing keys? (inside the caller's transaction)

    Tries the current keys of the tenants whose keys are newest (at most READINESS_SAMPLE):
    ready when at most half of them fail. A node with a wrong secret (or one missing a
    fallback that most keys still need) fails most of them and leaves the load balancer;
    one tenant's damaged key, which no node can decrypt, does not take every node out: it
    is logged, and only that tenant's logins and refreshes answer 503.
    """
    rows = db.session.execute(
        select(SigningKey.kid, SigningKey.private_key_encrypted)
        .where(SigningKey.retired_at.is_(None))
        .order_by(SigningKey.created_at.desc(), SigningKey.id.desc()).limit(READINESS_SAMPLE)
    ).all()
    keks = runtime().key_encryption_keys
    failed = []
    for row in rows:
        try:
            _decrypted(row.kid, bytes(row.private_key_encrypted), keks)
        except (InvalidTag, ValueError):
            failed.append(row.kid)
    if failed:
        log.error("readyz: %d of %d sampled signing keys cannot be decrypted: %s",
                  len(failed), len(rows), " ".join(failed),
                  extra={"event": "signing_key_undecryptable"})
    return 2 * len(failed) <= len(rows)
