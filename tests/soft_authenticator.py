"""A software WebAuthn authenticator, and the browser around it, for the tests (SPEC §13.5).

It answers the options JSON Baton sends with the credential JSON a browser's
`PublicKeyCredential.toJSON()` produces: ES256 keys (cryptography), "none" attestation,
CBOR by cbor2. Each knob turns one thing a real browser or authenticator would do wrong or
differently (the origin, the RP ID, the flags, the counter, the user handle), so the tests
can show that Baton's verification refuses exactly what WebAuthn says to refuse.

Why not a packaged one: soft-webauthn (last release 2022) needs fido2 0.9 and answers with
bytes, not the JSON a browser sends; fido2's client needs a CTAP device. This is ~120 lines.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40  # authenticatorData flags (WebAuthn §6.1)


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Credential:
    id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int

    def cose_public_key(self) -> bytes:
        """RFC 9053 EC2 key, ES256 (-7), P-256 (1)."""
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})


class SoftAuthenticator:
    """A platform authenticator with resident keys, in a browser at `origin`."""

    def __init__(self, origin: str, *, user_verified: bool = True,
                 first_sign_count: int = 1) -> None:
        self.origin = origin
        self.user_verified = user_verified
        self.first_sign_count = first_sign_count
        self.credentials: dict[bytes, Credential] = {}

    def _flags(self, user_present: bool, user_verified: bool | None) -> int:
        verified = self.user_verified if user_verified is None else user_verified
        return (UP if user_present else 0) | (UV if verified else 0)

    @staticmethod
    def client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], *, origin: str | None = None,
               rp_id: str | None = None, user_present: bool = True,
               user_verified: bool | None = None, kind: str = "webauthn.create",
               credential_id: bytes | None = None) -> dict[str, Any]:
        """navigator.credentials.create({publicKey: options}), then .toJSON()."""
        rp_id = rp_id or options["rp"]["id"]
        credential = Credential(credential_id or os.urandom(32),
                                ec.generate_private_key(ec.SECP256R1()), rp_id,
                                unb64u(options["user"]["id"]), self.first_sign_count)
        self.credentials[credential.id] = credential
        auth_data = (hashlib.sha256(rp_id.encode()).digest()
                     + bytes([self._flags(user_present, user_verified) | AT])
                     + struct.pack(">I", credential.sign_count) + bytes(16)
                     + struct.pack(">H", len(credential.id)) + credential.id
                     + credential.cose_public_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self.client_data(kind, options["challenge"], origin or self.origin)
        return {"id": b64u(credential.id), "rawId": b64u(credential.id), "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64u(client_data),
                             "attestationObject": b64u(attestation),
                             "transports": ["internal"]}}

    def get(self, options: dict[str, Any], *, origin: str | None = None,
            rp_id: str | None = None, credential_id: bytes | None = None,
            sign_count: int | None = None, user_present: bool = True,
            user_verified: bool | None = None, user_handle: bytes | None | bool = True,
            kind: str = "webauthn.get") -> dict[str, Any]:
        """navigator.credentials.get({publicKey: options}), then .toJSON(). The counter
        moves on by one unless `sign_count` sets it; `user_handle=False` leaves it out."""
        credential = self.credentials[credential_id or self._pick(options)]
        credential.sign_count = (credential.sign_count + 1 if sign_count is None
                                 else sign_count)
        auth_data = (hashlib.sha256((rp_id or credential.rp_id).encode()).digest()
                     + bytes([self._flags(user_present, user_verified)])
                     + struct.pack(">I", credential.sign_count))
        client_data = self.client_data(kind, options["challenge"], origin or self.origin)
        signature = credential.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                        ec.ECDSA(hashes.SHA256()))
        response: dict[str, Any] = {"clientDataJSON": b64u(client_data),
                                    "authenticatorData": b64u(auth_data),
                                    "signature": b64u(signature)}
        if user_handle is True:
            response["userHandle"] = b64u(credential.user_handle)
        elif isinstance(user_handle, bytes):
            response["userHandle"] = b64u(user_handle)
        return {"id": b64u(credential.id), "rawId": b64u(credential.id), "type": "public-key",
                "authenticatorAttachment": "platform", "clientExtensionResults": {},
                "response": response}

    def _pick(self, options: dict[str, Any]) -> bytes:
        """An allowed credential this authenticator holds, or (no allowCredentials) a
        discoverable one of the RP."""
        allowed = [unb64u(c["id"]) for c in options.get("allowCredentials", [])]
        held = [cid for cid, c in self.credentials.items() if c.rp_id == options["rpId"]]
        choice = [cid for cid in held if cid in allowed] if allowed else held
        if not choice:
            raise LookupError("no credential for these options")
        return choice[0]
