"""Signing keys: JWKS, rotation with a retirement window (SPEC §6); RFC 8414 metadata."""
from __future__ import annotations

from datetime import timedelta

import jwt
import pytest

from app.extensions import db
from app.services.errors import KeyUnavailable
from app.services.tenancy import signing_keys
from tests.helpers import login
from tests.helpers import utcnow
from tests.plugins.database import make_app


def verify_with_jwks(client, access_token: str) -> dict:
    """What any resource server does: pick the key by kid from the published JWKS."""
    jwk_set = jwt.PyJWKSet.from_dict(client.get("/v1/tenants/acme/jwks.json").get_json())
    kid = jwt.get_unverified_header(access_token)["kid"]
    key = next(k for k in jwk_set.keys if k.key_id == kid)
    return jwt.decode(access_token, key, algorithms=["EdDSA"], audience="baton")



def test_jwks_publishes_public_key_only(client, tenant):
    response = client.get("/v1/tenants/acme/jwks.json")
    assert response.status_code == 200
    (key,) = response.get_json()["keys"]
    assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["alg"] == "EdDSA"
    assert "d" not in key


def test_jwks_unknown_tenant(client):
    assert client.get("/v1/tenants/nope/jwks.json").status_code == 404


def test_rotation_keeps_old_key_until_its_tokens_expire(ctx, client, user):
    before = login()
    kid_before = jwt.get_unverified_header(before.access_token)["kid"]
    runner = client.application.test_cli_runner()
    result = runner.invoke(args=["keys", "rotate", "acme"])
    assert result.exit_code == 0, result.output
    after = login()
    kid_after = jwt.get_unverified_header(after.access_token)["kid"]
    assert kid_after != kid_before
    # Both verify against the published JWKS, each by its own kid.
    assert verify_with_jwks(client, before.access_token)["sid"] == before.session_id
    assert verify_with_jwks(client, after.access_token)["sid"] == after.session_id
    assert {k["kid"] for k in client.get("/v1/tenants/acme/jwks.json").get_json()["keys"]} == {
        kid_before, kid_after}
    # And Baton itself still accepts the old token.
    assert client.get("/v1/tenants/acme/userinfo", headers={
        "Authorization": f"Bearer {before.access_token}"}).status_code == 200


def test_retired_key_leaves_jwks_after_window(ctx, client, user):
    # access_ttl 900 s + the 5 s settings cache: a key retired 906 s ago is no longer needed.
    old_kid = signing_keys.rotate_key("acme", utcnow() - timedelta(seconds=906))
    newest = signing_keys.rotate_key("acme", utcnow())
    published = {k["kid"] for k in client.get("/v1/tenants/acme/jwks.json").get_json()["keys"]}
    assert newest in published
    assert old_kid in published  # retired just now: tokens it signed may be alive
    assert len(published) == 2  # the first key, retired 906 s ago, is gone


def test_cli_rotate_unknown_tenant(runner):
    result = runner.invoke(args=["keys", "rotate", "nope"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: ")


def test_private_keys_are_encrypted_at_rest(ctx, tenant, database_url):
    import sqlalchemy as sa

    blob = db.session.execute(sa.text("SELECT private_key_encrypted FROM signing_keys")).scalar()
    db.session.rollback()
    assert len(blob) == 12 + 32 + 16  # nonce, Ed25519 seed, GCM tag
    # Another SECRET_KEY cannot decrypt it.
    other = make_app(database_url, SECRET_KEY="another-secret-0123456789abcdefghij")
    with other.app_context():
        row = db.session.execute(sa.text(
            "SELECT kid, private_key_encrypted FROM signing_keys")).one()
        with pytest.raises(KeyUnavailable):
            signing_keys.private_key(row.kid, row.private_key_encrypted)
        db.session.remove()


def test_metadata(client, tenant):
    response = client.get("/v1/tenants/acme/.well-known/oauth-authorization-server")
    assert response.status_code == 200
    meta = response.get_json()
    base = "http://baton.test/v1/tenants/acme"
    assert meta["issuer"] == base
    assert meta["token_endpoint"] == f"{base}/token"
    assert meta["revocation_endpoint"] == f"{base}/revoke"
    assert meta["jwks_uri"] == f"{base}/jwks.json"
    assert meta["grant_types_supported"] == ["password", "refresh_token", "authorization_code"]
    assert meta["authorization_challenge_endpoint"] == f"{base}/authorize-challenge"
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["token_endpoint_auth_methods_supported"] == ["none"]
    rfc_location = client.get("/.well-known/oauth-authorization-server/v1/tenants/acme")
    assert rfc_location.get_json() == meta


def test_metadata_unknown_tenant(client):
    assert client.get("/v1/tenants/nope/.well-known/oauth-authorization-server").status_code == 404


def test_metadata_behind_a_trusted_proxy(database_url, tenant):
    # Development/test only (production requires BATON_BASE_URL): the forwarded host is
    # believed only when BATON_TRUST_FORWARDED_HOST says so, not merely behind a proxy.
    app = make_app(database_url, BASE_URL="", TRUSTED_PROXIES=1, TRUST_FORWARDED_HOST=True)
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "auth.example.com",
               "X-Forwarded-Prefix": "/auth"}
    meta = app.test_client().get("/v1/tenants/acme/.well-known/oauth-authorization-server",
                                 headers=headers).get_json()
    assert meta["token_endpoint"] == "https://auth.example.com/auth/v1/tenants/acme/token"


def test_forwarded_host_needs_its_own_setting(database_url, tenant):
    app = make_app(database_url, BASE_URL="", TRUSTED_PROXIES=1)
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example.com",
               "X-Forwarded-Prefix": "/evil"}
    meta = app.test_client().get("/v1/tenants/acme/.well-known/oauth-authorization-server",
                                 headers=headers).get_json()
    assert meta["issuer"] == "https://localhost/v1/tenants/acme"  # proto trusted, host not


def test_configured_base_url_wins_over_every_header(database_url, tenant):
    app = make_app(database_url, BASE_URL="https://auth.example.com", TRUSTED_PROXIES=1,
                   TRUST_FORWARDED_HOST=True)
    headers = {"Host": "evil.example.com", "X-Forwarded-Host": "evil.example.com",
               "X-Forwarded-Prefix": "/evil"}
    client = app.test_client()
    meta = client.get("/v1/tenants/acme/.well-known/oauth-authorization-server",
                      headers=headers).get_json()
    assert meta["issuer"] == "https://auth.example.com/v1/tenants/acme"
    assert meta["jwks_uri"] == "https://auth.example.com/v1/tenants/acme/jwks.json"


def test_forwarded_headers_ignored_without_trusted_proxy(database_url, tenant):
    app = make_app(database_url, BASE_URL="")
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example.com"}
    meta = app.test_client().get("/v1/tenants/acme/.well-known/oauth-authorization-server",
                                 headers=headers).get_json()
    assert meta["issuer"] == "http://localhost/v1/tenants/acme"
