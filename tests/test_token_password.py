"""POST …/token with grant_type=password (SPEC §4.1)."""
from __future__ import annotations

import jwt
import pytest

INVALID_GRANT = {"error": "invalid_grant",
                 "error_description": "The provided grant is invalid, expired or revoked."}


def test_login_returns_token_pair(tokens):
    response = tokens.login()
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token",
                         "refresh_expires_in", "session_id"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["refresh_expires_in"] == 14 * 24 * 3600
    assert len(body["refresh_token"]) >= 43  # 256 bits, base64url


def test_access_token_claims_verify_against_jwks(client, tokens):
    body = tokens.login().get_json()
    jwks = client.get("/v1/tenants/acme/jwks.json").get_json()
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA"
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    claims = jwt.decode(body["access_token"], key, algorithms=["EdDSA"], audience="baton")
    assert claims["iss"] == "http://baton.test/v1/tenants/acme"
    assert claims["sid"] == body["session_id"]
    assert claims["exp"] - claims["iat"] == 900
    assert {"sub", "jti", "tid"} <= set(claims)


def test_login_accepts_json(client, tokens):
    response = client.post("/v1/tenants/acme/token", json={
        "grant_type": "password", "username": "alice", "password": "correct horse"})
    assert response.status_code == 200


@pytest.mark.parametrize("username, password", [
    ("alice", "wrong"),
    ("nobody", "correct horse"),
    ("alicia", "correct horse"),  # (ALICE is alice: usernames are case-folded, SPEC §11)
])
def test_bad_credentials_all_look_the_same(tokens, username, password):
    response = tokens.login(username, password)
    assert response.status_code == 400
    assert response.get_json() == INVALID_GRANT


def test_unknown_tenant_is_404(client, user):
    response = client.post("/v1/tenants/nope/token", data={
        "grant_type": "password", "username": "alice", "password": "correct horse"})
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


@pytest.mark.parametrize("data, error", [
    ({}, "invalid_request"),
    ({"grant_type": "password"}, "invalid_request"),
    ({"grant_type": "password", "username": "alice"}, "invalid_request"),
    ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
    ({"grant_type": "refresh_token"}, "invalid_request"),
])
def test_parameter_errors(client, tenant, data, error):
    response = client.post("/v1/tenants/acme/token", data=data)
    assert response.status_code == 400
    assert response.get_json()["error"] == error


@pytest.mark.parametrize("body, content_type", [
    ("grant_type=password&grant_type=password&username=a&password=b",
     "application/x-www-form-urlencoded"),
    ('{"grant_type": "password", "grant_type": "password"}', "application/json"),
    ('{"grant_type": ["password"]}', "application/json"),
    ('{"grant_type": 1}', "application/json"),
    ('["grant_type"]', "application/json"),
    ("{not json", "application/json"),
    (b"grant_type=pass\xffword", "application/x-www-form-urlencoded"),
    ("grant_type=password%00&username=a&password=b", "application/x-www-form-urlencoded"),
    ('{"grant_type": "password", "username": "\\ud800", "password": "x"}', "application/json"),
])
def test_malformed_bodies_are_invalid_request(client, tenant, body, content_type):
    response = client.post("/v1/tenants/acme/token", data=body, content_type=content_type)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_disabled_user_cannot_log_in(app, tokens):
    import sqlalchemy as sa

    from app.extensions import db

    with app.app_context():
        with db.session.begin():
            db.session.execute(sa.text("UPDATE users SET disabled_at = now()"))
        db.session.remove()
    assert tokens.login().get_json() == INVALID_GRANT


def test_unknown_user_costs_one_full_hash(app, tokens, monkeypatch):
    """No user enumeration by timing: an unknown user is verified against a dummy hash
    made with the same argon2 parameters."""
    from argon2 import PasswordHasher

    calls = []
    real_verify = PasswordHasher.verify
    monkeypatch.setattr(PasswordHasher, "verify",
                        lambda self, h, p: calls.append(h) or real_verify(self, h, p))
    tokens.login("nobody", "whatever")
    tokens.login("alice", "wrong")
    assert len(calls) == 2
    unknown, known = (h.split("$")[3] for h in calls)  # "m=...,t=...,p=..."
    assert unknown == known
