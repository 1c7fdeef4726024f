"""Cryptographic primitives: opaque tokens, digests, derived keys, passwords, key encryption."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from typing import Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError
from argon2.exceptions import VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

REFRESH_TOKEN_BYTES = 32  # 256 bits of entropy (SPEC §5); 43 base64url characters


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def new_refresh_token() -> str:
    """A fresh random refresh token (the first of a session's chain)."""
    return b64url(secrets.token_bytes(REFRESH_TOKEN_BYTES))


def token_digest(token: str) -> bytes:
    """The SHA-256 digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def derive_key(secret: str, purpose: str) -> bytes:
    """A 256-bit key for one purpose, derived from the service secret (HKDF-SHA256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(secret.encode("utf-8"))


SUCCESSOR_SALT_BYTES = 16


def new_successor_salt() -> bytes:
    """A session's random successor salt (stored on the session row)."""
    return secrets.token_bytes(SUCCESSOR_SALT_BYTES)


def successor_token(presented: str, key: bytes, salt: bytes | None = None,
                    tenant_id: int = 0, session_id: bytes = b"") -> str:
    """The successor of a refresh token: HMAC-SHA256, so duplicates get the same one.

    With the session's salt, the tenant and session ids are mixed in too, so the server key
    plus one old token no longer yields the session's later tokens offline. Without a salt
    (sessions started before salts existed) the original derivation is kept.
    """
    if salt is None:
        message = presented.encode("utf-8")
    else:
        message = b"".join((b"baton successor v2\x00", tenant_id.to_bytes(8, "big"),
                            session_id, salt, presented.encode("utf-8")))
    return b64url(hmac.new(key, message, hashlib.sha256).digest())


def access_token_id(successor_digest: bytes) -> str:
    """A `jti` that is a pure function of the rotation it records."""
    return b64url(hashlib.sha256(b"baton-jti:" + successor_digest).digest()[:16])


def encrypt(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """AES-256-GCM; `context` is bound as associated data. Output is nonce || ciphertext."""
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def decrypt(key: bytes, blob: bytes, context: bytes) -> bytes:
    """Inverse of encrypt(); raises cryptography's InvalidTag on a wrong key or context."""
    return AESGCM(key).decrypt(blob[:12], blob[12:], context)


def decrypt_any(keys: Sequence[bytes], blob: bytes, context: bytes) -> tuple[bytes, int]:
    """decrypt() with the first of `keys` that works (SECRET_KEY, then its fallbacks), and
    that key's index; InvalidTag if none does."""
    for index, key in enumerate(keys):
        try:
            return decrypt(key, blob, context), index
        except InvalidTag:
            continue
    raise InvalidTag()


def new_ed25519_key() -> tuple[bytes, dict]:
    """A new Ed25519 key: raw private bytes and the public JWK (RFC 8037) with its kid."""
    private = Ed25519PrivateKey.generate()
    raw_private = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    raw_public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public)}
    # RFC 7638 thumbprint: required members, lexicographic order, no whitespace.
    thumbprint = hashlib.sha256(json.dumps(jwk, sort_keys=True, separators=(",", ":")).encode())
    jwk.update({"kid": b64url(thumbprint.digest()), "alg": "EdDSA", "use": "sig"})
    return raw_private, jwk


def load_ed25519_private(raw: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(raw)


class Passwords:
    """argon2id hashing with a constant-time path for unknown users."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Verified against when the user does not exist, so timing reveals nothing.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; always does one full hash computation."""
        try:
            return self._hasher.verify(password_hash or self._dummy_hash, password) and (
                password_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
