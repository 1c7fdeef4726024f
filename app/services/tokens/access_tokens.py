"""Access tokens: EdDSA-signed JWTs (RFC 7519, RFC 8037) with the claims of SPEC §6."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from functools import lru_cache

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from app.crypto import b64url
from app.extensions import db
from app.models import SigningKey
from app.services.errors import AccessDenied
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.signing_keys import retention_window


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
    auth_time: int  # SPEC §13.4: the session's sign-in, unchanged by refresh
    amr: tuple[str, ...]  # RFC 8176 authentication methods of that sign-in


@lru_cache(maxsize=1024)
def _header_segment(kid: str) -> str:
    """The protected header of every token signed with `kid`, already encoded."""
    header = {"alg": "EdDSA", "kid": kid, "typ": "JWT"}
    return b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())


def sign_access_token(claims: AccessClaims, kid: str, key: Ed25519PrivateKey) -> str:
    """Sign the claims as an RFC 7515 compact JWS. Ed25519 is deterministic and the
    serialization is fixed, so equal claims give a byte-identical token.

    Written out rather than through PyJWT's encode: on the refresh path its generic
    header and option handling cost more than the signature itself (docs/performance.md).
    PyJWT still verifies these tokens, in the tests and in `verify_access_token`.
    """
    payload = json.dumps({
        "iss": claims.issuer,
        "sub": str(claims.user_id),
        "aud": claims.audience,
        "iat": claims.issued_at,
        "exp": claims.expires_at,
        "jti": claims.token_id,
        "sid": claims.session_id,
        "tid": claims.tenant_id,
        "auth_time": claims.auth_time,
        "amr": list(claims.amr),
    }, separators=(",", ":")).encode()
    signing_input = f"{_header_segment(kid)}.{b64url(payload)}"
    signature = key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url(signature)}"


@dataclass(frozen=True)
class VerifiedAccess:
    user_id: int
    session_id: str
    tenant_id: int
    auth_time: int | None  # None in tokens signed before SPEC §13 existed
    claims: dict = field(default_factory=dict, compare=False)  # all of them, for introspection


_KID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# `iat` may be this far ahead of `now`: another node's clock, rounded down to the second.
CLOCK_SKEW_S = 5


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)

# kid → parsed public key; a kid's key material never changes, so entries never go stale.
_parsed_keys: dict[str, Ed25519PublicKey] = {}


def _published_key(kid: str, tenant: TenantInfo,
                   now: datetime) -> tuple[int, Ed25519PublicKey] | None:
    """(tenant id, key) if the tenant publishes this kid now (inside the caller's transaction)."""
    row = db.session.execute(
        select(SigningKey.retired_at, SigningKey.public_jwk)
        .where(SigningKey.kid == kid, SigningKey.tenant_id == tenant.id)
    ).one_or_none()
    if row is None:
        return None
    if row.retired_at is not None and row.retired_at <= now - retention_window(tenant.access_ttl):
        return None  # left the JWKS: nothing it signed can still be valid
    key = _parsed_keys.get(kid)
    if key is None:
        key = jwt.PyJWK(row.public_jwk).key
        if len(_parsed_keys) < 4096:
            _parsed_keys[kid] = key
    return tenant.id, key


def verify_access_token(token: str, tenant: TenantInfo, audience: str,
                        now: datetime) -> VerifiedAccess:
    """Check signature, expiry, audience and tenant; AccessDenied for anything wrong."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise AccessDenied() from None
    kid = header.get("kid")
    # Kids are base64url thumbprints: anything else (a NUL, a lone surrogate) is refused
    # here, before it could reach the database driver.
    if header.get("alg") != "EdDSA" or not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise AccessDenied()
    published = _published_key(kid, tenant, now)
    if published is None:
        raise AccessDenied()
    key_tenant_id, key = published
    try:
        # The times are judged below against `now`, not by PyJWT against the wall clock.
        claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=audience,
                            options={"require": ["exp", "iat", "sub", "sid", "tid", "jti"],
                                     "verify_exp": False, "verify_iat": False,
                                     "verify_nbf": False})
        user_id, tenant_id = int(claims["sub"]), int(claims["tid"])
        expires_at, issued_at = claims["exp"], claims["iat"]
    except (jwt.PyJWTError, ValueError, TypeError):
        raise AccessDenied() from None
    moment = now.timestamp()
    if (not _is_int(expires_at) or not _is_int(issued_at) or expires_at <= moment
            or issued_at > moment + CLOCK_SKEW_S):
        raise AccessDenied()
    if tenant_id != key_tenant_id or not isinstance(claims["sid"], str):
        raise AccessDenied()
    auth_time = claims.get("auth_time")
    return VerifiedAccess(user_id, claims["sid"], tenant_id,
                          auth_time if _is_int(auth_time) else None, claims)
