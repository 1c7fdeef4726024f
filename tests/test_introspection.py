"""RFC 7662 introspection (SPEC §10): active only while signature, expiry and session are good."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import admin_keys
from app.services.tenancy import tenants
from tests import secret_registry
from tests.helpers import utcnow
from tests.plugins.database import make_app

URL = "/v1/tenants/acme/introspect"


@pytest.fixture
def introspect_key(app, tenant) -> str:
    with app.app_context():
        _, key = admin_keys.create_key("acme", "resource server", "introspect", utcnow())
        db.session.remove()
    secret_registry.remember(key)
    return key


def introspect(client, key: str, token: str, hint: str | None = None, url: str = URL):
    data = {"token": token, **({"token_type_hint": hint} if hint else {})}
    return client.post(url, data=data, headers={"Authorization": f"Bearer {key}"})


def test_active_access_token(client, tokens, introspect_key):
    login = tokens.login().get_json()
    response = introspect(client, introspect_key, login["access_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["active"] is True and body["token_type"] == "access_token"
    assert body["username"] == "alice" and body["sub"] == "1" and body["tid"] == 1
    assert body["sid"] == login["session_id"]
    assert body["iss"] == "http://baton.test/v1/tenants/acme" and body["aud"] == "baton"
    assert body["exp"] - body["iat"] == 900 and body["jti"]


def test_access_token_inactive_as_soon_as_session_revoked(client, tokens, introspect_key,
                                                          admin):
    login = tokens.login().get_json()
    assert introspect(client, introspect_key, login["access_token"]).get_json()["active"]
    assert admin("DELETE", "/users/1/sessions").status_code == 204
    body = introspect(client, introspect_key, login["access_token"]).get_json()
    assert body == {"active": False}


def test_access_token_inactive_when_user_disabled(client, tokens, introspect_key, admin):
    login = tokens.login().get_json()
    admin("PATCH", "/users/1", json={"disabled": True})
    assert introspect(client, introspect_key, login["access_token"]).get_json() == {
        "active": False}


@pytest.mark.slow
def test_expired_access_token_inactive(database_url, tenant, user, introspect_key):
    app = make_app(database_url)
    with app.app_context():
        tenants.update_tenant("acme", access_ttl=1)
        db.session.remove()
    client = app.test_client()
    login = client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": "correct horse"}).get_json()
    import time

    time.sleep(2.1)
    assert introspect(client, introspect_key, login["access_token"]).get_json() == {
        "active": False}


def test_refresh_token_active_only_while_current(client, tokens, introspect_key):
    login = tokens.login().get_json()
    body = introspect(client, introspect_key, login["refresh_token"], "refresh_token").get_json()
    assert body["active"] is True and body["token_type"] == "refresh_token"
    assert body["sid"] == login["session_id"] and body["username"] == "alice"
    assert body["exp"] > body["iat"]
    rotated = tokens.refresh(login["refresh_token"]).get_json()
    assert introspect(client, introspect_key, login["refresh_token"]).get_json() == {
        "active": False}
    assert introspect(client, introspect_key, rotated["refresh_token"]).get_json()["active"]
    # A hint naming the wrong kind still finds the token (RFC 7662 §2.1).
    assert introspect(client, introspect_key, rotated["refresh_token"],
                      "access_token").get_json()["active"]
    assert introspect(client, introspect_key, rotated["access_token"],
                      "refresh_token").get_json()["active"]


@pytest.mark.parametrize("token", ["unknown", "a.b.c", "x" * 40, "eyJhbGciOiJub25lIn0.e30."])
def test_unknown_tokens_inactive(client, user, introspect_key, token):
    assert introspect(client, introspect_key, token).get_json() == {"active": False}


def test_other_tenants_tokens_inactive(app, client, tokens, introspect_key):
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("globex", "Globex"), utcnow())
        users.create_user("globex", "alice", "correct horse", utcnow())
        _, globex_key = admin_keys.create_key("globex", None, "introspect", utcnow())
        db.session.remove()
    secret_registry.remember(globex_key)
    login = tokens.login().get_json()
    for token in (login["access_token"], login["refresh_token"]):
        response = introspect(client, globex_key, token, url="/v1/tenants/globex/introspect")
        assert response.get_json() == {"active": False}
    # And acme's key does not work on globex.
    response = introspect(client, introspect_key, login["access_token"],
                          url="/v1/tenants/globex/introspect")
    assert response.status_code == 401


def test_admin_scope_may_introspect(client, tokens, admin_key):
    login = tokens.login().get_json()
    assert introspect(client, admin_key, login["access_token"]).get_json()["active"] is True


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer bat_nope"},
                                     {"Authorization": "Basic Zm9vOmJhcg=="}])
def test_needs_a_key(client, tokens, headers):
    login = tokens.login().get_json()
    response = client.post(URL, data={"token": login["access_token"]}, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_bad_requests(client, user, introspect_key):
    headers = {"Authorization": f"Bearer {introspect_key}"}
    assert client.post(URL, data={}, headers=headers).get_json()["error"] == "invalid_request"
    repeated = client.post(URL, data="token=a&token=b", headers={
        **headers, "Content-Type": "application/x-www-form-urlencoded"})
    assert repeated.status_code == 400
    assert client.post(URL, json={"token": 5}, headers=headers).status_code == 400


def test_metadata_lists_the_endpoint(client, tenant):
    meta = client.get("/v1/tenants/acme/.well-known/oauth-authorization-server").get_json()
    assert meta["introspection_endpoint"] == "http://baton.test/v1/tenants/acme/introspect"
