"""Access tokens: EdDSA-signed JWTs (RFC 7519, RFC 8037) with the claims of SPEC §6."""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from app.errors import InvalidToken
from app.extensions import db
from app.models import SigningKey
from app.models import Tenant
from app.services.keys import retention_window


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


def sign_access_token(claims: AccessClaims, kid: str, key: Ed25519PrivateKey) -> str:
    """Sign the claims as an RFC 7515 compact JWS. Ed25519 is deterministic and PyJWT
    serializes with sorted headers, so equal claims give a byte-identical token.

    PyJWT rather than a hand-written JWS: it gives the same bytes, and 10,000 signatures
    timed in-process (median of 5) cost 33.4 µs each against 32.4 µs hand-written, a
    difference inside the noise of the refresh path (docs/performance.md).
    """
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
    return jwt.encode(payload, key, algorithm="EdDSA", headers={"kid": kid}, sort_headers=True)


@dataclass(frozen=True)
class VerifiedAccess:
    user_id: int
    session_id: str
    tenant_id: int
    claims: dict = field(default_factory=dict, compare=False)  # all of them, for introspection


# kid → parsed public key; a kid's key material never changes, so entries never go stale.
_parsed_keys: dict[str, Ed25519PublicKey] = {}


def _published_key(kid: str, tenant_slug: str,
                   now: datetime) -> tuple[int, Ed25519PublicKey] | None:
    """(tenant id, key) if the tenant publishes this kid now (inside the caller's transaction)."""
    row = db.session.execute(
        select(Tenant.id, Tenant.access_ttl, SigningKey.retired_at, SigningKey.public_jwk)
        .join(Tenant, Tenant.id == SigningKey.tenant_id)
        .where(SigningKey.kid == kid, Tenant.slug == tenant_slug)
    ).one_or_none()
    if row is None:
        return None
    if row.retired_at is not None and row.retired_at <= now - retention_window(row.access_ttl):
        return None  # left the JWKS: nothing it signed can still be valid
    key = _parsed_keys.get(kid)
    if key is None:
        key = jwt.PyJWK(row.public_jwk).key
        if len(_parsed_keys) < 4096:
            _parsed_keys[kid] = key
    return row.id, key


def verify_access_token(token: str, tenant_slug: str, audience: str,
                        now: datetime) -> VerifiedAccess:
    """Check signature, expiry, audience and tenant; InvalidToken for anything wrong."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise InvalidToken() from None
    kid = header.get("kid")
    if header.get("alg") != "EdDSA" or not isinstance(kid, str) or len(kid) > 128:
        raise InvalidToken()
    published = _published_key(kid, tenant_slug, now)
    if published is None:
        raise InvalidToken()
    key_tenant_id, key = published
    try:
        claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=audience,
                            options={"require": ["exp", "iat", "sub", "sid", "tid", "jti"]})
        user_id, tenant_id = int(claims["sub"]), int(claims["tid"])
    except (jwt.PyJWTError, ValueError, TypeError):
        raise InvalidToken() from None
    if tenant_id != key_tenant_id or not isinstance(claims["sid"], str):
        raise InvalidToken()
    return VerifiedAccess(user_id, claims["sid"], tenant_id, claims)
