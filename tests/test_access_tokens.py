"""Access tokens as SPEC §6 signs them: deterministic bytes, sorted header, PyJWT-verifiable."""
from __future__ import annotations

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.crypto import b64url
from app.services.tokens.access_tokens import AccessClaims
from app.services.tokens.access_tokens import sign_access_token

CLAIMS = AccessClaims("https://baton.test/v1/tenants/acme", "acme", 42, "sid-1", 7,
                      1_700_000_000, 1_700_000_900, "jti-1", 1_699_999_000, ("pwd",))


def test_equal_claims_give_byte_identical_tokens() -> None:
    key = Ed25519PrivateKey.generate()
    assert sign_access_token(CLAIMS, "k1", key) == sign_access_token(CLAIMS, "k1", key)


def test_header_is_sorted_compact_json() -> None:
    token = sign_access_token(CLAIMS, "k1", Ed25519PrivateKey.generate())
    assert token.split(".")[0] == b64url(b'{"alg":"EdDSA","kid":"k1","typ":"JWT"}')


def test_claims_verify_with_the_public_key() -> None:
    key = Ed25519PrivateKey.generate()
    token = sign_access_token(CLAIMS, "k1", key)
    claims = jwt.decode(token, key.public_key(), algorithms=["EdDSA"], audience="acme",
                        options={"verify_exp": False})
    assert claims == {"iss": CLAIMS.issuer, "sub": "42", "aud": "acme",
                      "iat": 1_700_000_000, "exp": 1_700_000_900, "jti": "jti-1",
                      "sid": "sid-1", "tid": 7, "auth_time": 1_699_999_000, "amr": ["pwd"]}
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}


def test_verification_judges_expiry_by_the_given_now(ctx, user) -> None:
    """`verify_access_token(..., now)` decides with the `now` it is given, not the wall clock:
    a token is refused once `now` passes its `exp`, and before its `iat`."""
    from datetime import timedelta

    import pytest

    from app.runtime import runtime
    from app.services.errors import AccessDenied
    from app.services.signin.password_grant import login
    from app.services.tenancy.lookup import lookup_tenant
    from app.services.tokens.access_tokens import verify_access_token
    from app.services.unit_of_work import transaction
    from tests.helpers import PASSWORD
    from tests.helpers import utcnow

    now = utcnow()
    issued = login("acme", "alice", PASSWORD, now=now)
    with transaction():
        tenant = lookup_tenant("acme")
        audience = runtime().audience
        assert verify_access_token(issued.access_token, tenant, audience, now).user_id
        for moment in (now + timedelta(seconds=tenant.access_ttl + 1),
                       now - timedelta(seconds=60)):
            with pytest.raises(AccessDenied):
                verify_access_token(issued.access_token, tenant, audience, moment)
