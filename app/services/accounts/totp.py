"""TOTP as SPEC §13.1 fixes it (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps; a code of the
previous or next step is accepted), on pyotp, with the secret encrypted at rest.

The secret is 160 random bits (RFC 4226 §4's recommended length), base32 as authenticator
apps take it. It is stored encrypted with the service secret like the signing keys (AES-GCM
bound to the tenant and user), so SECRET_KEY_FALLBACKS and `flask keys reencrypt` cover it.
"""
from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

from app.crypto import decrypt_any
from app.crypto import encrypt
from app.runtime import runtime

PERIOD_S = 30
DIGITS = 6
SECRET_BASE32_LENGTH = 32  # 160 bits


def new_secret() -> str:
    return pyotp.random_base32(SECRET_BASE32_LENGTH)


def provisioning_uri(secret: str, account: str, issuer: str) -> str:
    """The `otpauth://totp/…` URI an authenticator app scans (as a QR code) or takes as text."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_S).provisioning_uri(
        name=account, issuer_name=issuer)


def current_step(now: datetime) -> int:
    return int(now.timestamp()) // PERIOD_S


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code this is (now's, the one before or the one after), or None.

    Every candidate is compared in constant time; a malformed code matches nothing.
    """
    if len(code) != DIGITS or not code.isascii() or not code.isdigit():
        return None
    generator = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD_S)
    step = current_step(now)
    found = None
    for candidate in (step - 1, step, step + 1):
        if hmac.compare_digest(generator.generate_otp(candidate), code):
            found = candidate  # the latest match wins: a later step is never "replayed" by it
    return found


def _context(tenant_id: int, user_id: int) -> bytes:
    # Binds the ciphertext to its owner: a blob copied onto another user's row won't decrypt.
    return f"baton-totp:{tenant_id}:{user_id}".encode()


def encrypt_secret(secret: str, tenant_id: int, user_id: int) -> bytes:
    return encrypt(runtime().key_encryption_key, secret.encode("ascii"),
                   _context(tenant_id, user_id))


def decrypt_secret(blob: bytes, tenant_id: int, user_id: int) -> tuple[str, int]:
    """The secret and the index of the service secret that decrypted it (0: the current);
    cryptography's InvalidTag if none does."""
    raw, index = decrypt_any(runtime().key_encryption_keys, bytes(blob),
                             _context(tenant_id, user_id))
    return raw.decode("ascii"), index
