"""Access tokens: EdDSA-signed JWTs (RFC 7519, RFC 8037) with the claims of SPEC §6."""
from __future__ import annotations

from dataclasses import dataclass

import jwt

from app.services.keys import private_key


@dataclass(frozen=True)
class AccessClaims:
    issuer: str
    audience: str
    user_id: int
    session_id: str
    tenant_id: int
    issued_at: int
    expires_at: int
    token_id: str


def sign_access_token(claims: AccessClaims, kid: str, encrypted_key: bytes) -> str:
    """Sign the claims. Ed25519 is deterministic, so equal claims give an equal token."""
    payload = {
        "iss": claims.issuer,
        "sub": str(claims.user_id),
        "aud": claims.audience,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "jti": claims.token_id,
        "sid": claims.session_id,
        "tid": claims.tenant_id,
    }
    return jwt.encode(payload, private_key(kid, encrypted_key), algorithm="EdDSA",
                      headers={"kid": kid})
