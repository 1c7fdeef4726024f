"""app/crypto.py on its own: token shapes, deterministic successors, key encryption, passwords."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.exceptions import InvalidTag

from app import crypto


def test_b64url_is_unpadded_urlsafe() -> None:
    assert crypto.b64url(b"\xfb\xff") == "-_8"
    assert crypto.b64url(b"") == ""


def test_refresh_tokens_are_43_chars_and_fresh() -> None:
    tokens = {crypto.new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 43 and "=" not in t for t in tokens)


def test_token_digest_is_sha256() -> None:
    assert crypto.token_digest("abc") == hashlib.sha256(b"abc").digest()


def test_derived_keys_differ_by_purpose_and_secret() -> None:
    a = crypto.derive_key("secret-one", "successor")
    assert len(a) == 32
    assert a == crypto.derive_key("secret-one", "successor")
    assert a != crypto.derive_key("secret-one", "signing-keys")
    assert a != crypto.derive_key("secret-two", "successor")


def test_successor_is_deterministic_and_bound_to_salt_tenant_session() -> None:
    key, salt = b"k" * 32, b"s" * 16
    first = crypto.successor_token("tok", key, salt, 1, b"session-a")
    assert first == crypto.successor_token("tok", key, salt, 1, b"session-a")
    others = {crypto.successor_token("tok", key, salt, 2, b"session-a"),
              crypto.successor_token("tok", key, salt, 1, b"session-b"),
              crypto.successor_token("tok", key, b"t" * 16, 1, b"session-a"),
              crypto.successor_token("tok", b"j" * 32, salt, 1, b"session-a"),
              crypto.successor_token("tok", key)}  # unsalted: the original derivation
    assert first not in others and len(others) == 5


def test_access_token_id_is_a_function_of_the_rotation() -> None:
    digest = crypto.token_digest("successor")
    assert crypto.access_token_id(digest) == crypto.access_token_id(digest)
    assert crypto.access_token_id(digest) != crypto.access_token_id(crypto.token_digest("x"))
    assert len(crypto.access_token_id(digest)) == 22  # 16 bytes


def test_encrypt_round_trip_and_context_binding() -> None:
    key = crypto.derive_key("secret", "keys")
    blob = crypto.encrypt(key, b"private bytes", b"kid-1")
    assert blob != crypto.encrypt(key, b"private bytes", b"kid-1")  # random nonce
    assert crypto.decrypt(key, blob, b"kid-1") == b"private bytes"
    with pytest.raises(InvalidTag):
        crypto.decrypt(key, blob, b"kid-2")
    with pytest.raises(InvalidTag):
        crypto.decrypt(crypto.derive_key("other", "keys"), blob, b"kid-1")


def test_decrypt_any_reports_which_key_worked() -> None:
    old, new = crypto.derive_key("old", "keys"), crypto.derive_key("new", "keys")
    blob = crypto.encrypt(old, b"x", b"ctx")
    assert crypto.decrypt_any([new, old], blob, b"ctx") == (b"x", 1)
    with pytest.raises(InvalidTag):
        crypto.decrypt_any([new], blob, b"ctx")


def test_ed25519_jwk_has_rfc7638_thumbprint_kid() -> None:
    raw, jwk = crypto.new_ed25519_key()
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"} and "d" not in jwk
    required = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]},
                          separators=(",", ":")).encode()
    assert jwk["kid"] == crypto.b64url(hashlib.sha256(required).digest())
    public = crypto.load_ed25519_private(raw).public_key().public_bytes_raw()
    assert base64.urlsafe_b64decode(jwk["x"] + "=") == public


def test_passwords_verify_and_unknown_user_path() -> None:
    passwords = crypto.Passwords(time_cost=1, memory_kib=8, parallelism=1)
    stored = passwords.hash("correct horse")
    assert passwords.verify(stored, "correct horse")
    assert not passwords.verify(stored, "wrong")
    assert not passwords.verify(None, "correct horse")  # unknown user: still hashes, False
    assert not passwords.verify("not-a-hash", "correct horse")
    assert not passwords.needs_rehash(stored)
    assert crypto.Passwords(time_cost=2, memory_kib=8, parallelism=1).needs_rehash(stored)
