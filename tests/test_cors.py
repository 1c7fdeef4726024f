"""CORS for browser clients (SPEC §4): the tenant's origins only, on four endpoints, never admin."""
from __future__ import annotations

import time

import pytest
import requests

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import tenants
from tests.helpers import utcnow

ORIGIN = "https://app.example"
BASE = "/v1/tenants/acme"


@pytest.fixture
def cors_tenant(runner, tenant, user):
    result = runner.invoke(args=["tenants", "update", "acme", "--cors-origin", ORIGIN])
    assert result.exit_code == 0, result.output
    return tenant


def preflight(client, path: str, origin: str = ORIGIN, method: str = "POST"):
    return client.options(path, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type"})


@pytest.mark.parametrize("path, method", [
    ("/token", "POST"), ("/revoke", "POST"), ("/userinfo", "GET"), ("/sessions", "GET"),
    ("/sessions/00000000-0000-0000-0000-000000000000", "DELETE"),
])
def test_preflight_allowed_origin(client, cors_tenant, path, method):
    response = preflight(client, BASE + path, method=method)
    assert response.status_code in (200, 204)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert method in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Origin" in response.headers["Vary"]


def test_actual_requests_carry_the_header(client, cors_tenant, tokens):
    login = tokens.login(headers={"Origin": ORIGIN})
    assert login.headers["Access-Control-Allow-Origin"] == ORIGIN
    access = login.get_json()["access_token"]
    info = client.get(f"{BASE}/userinfo", headers={"Origin": ORIGIN,
                                                   "Authorization": f"Bearer {access}"})
    assert info.headers["Access-Control-Allow-Origin"] == ORIGIN
    # Errors too, so the page can read them.
    bad = tokens.login(password="wrong password", headers={"Origin": ORIGIN})
    assert bad.status_code == 400 and bad.headers["Access-Control-Allow-Origin"] == ORIGIN
    revoke = client.post(f"{BASE}/revoke", data={"token": "x"}, headers={"Origin": ORIGIN})
    assert revoke.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.parametrize("origin", ["https://evil.example", "https://app.example.evil",
                                    "http://app.example", "null"])
def test_other_origins_get_nothing(client, cors_tenant, origin):
    response = preflight(client, f"{BASE}/token", origin=origin)
    assert "Access-Control-Allow-Origin" not in response.headers
    login = client.post(f"{BASE}/token", data={"grant_type": "password", "username": "alice",
                                               "password": "correct horse"},
                        headers={"Origin": origin})
    assert "Access-Control-Allow-Origin" not in login.headers


def test_no_cors_without_configured_origins(client, tenant, user):
    assert "Access-Control-Allow-Origin" not in preflight(client, f"{BASE}/token").headers


@pytest.mark.parametrize("path", ["/admin/users", "/admin/users/1", "/introspect", "/jwks.json",
                                  "/.well-known/oauth-authorization-server"])
def test_never_on_admin_or_other_endpoints(client, cors_tenant, admin, path):
    assert "Access-Control-Allow-Origin" not in preflight(client, BASE + path).headers
    response = client.get(BASE + path, headers={"Origin": ORIGIN,
                                                 "Authorization": f"Bearer {admin.key}"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_tenants_create_takes_origins(runner, client, app):
    result = runner.invoke(args=["tenants", "create", "shop", "--cors-origin", ORIGIN,
                                 "--password-min-length", "10"])
    assert result.exit_code == 0, result.output
    assert preflight(client, "/v1/tenants/shop/token").headers[
        "Access-Control-Allow-Origin"] == ORIGIN
    with app.app_context():
        assert tenants.list_tenants()[0].password_min_length == 10
        db.session.remove()


def test_update_seen_by_every_worker_within_the_cache_window(app, live_server):
    """gunicorn with 4 workers, each caching tenant settings for TENANT_CACHE_S."""
    slug = "cors-live"
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings(slug, slug), utcnow())
        users.create_user(slug, "u", "correct horse", utcnow())
        db.session.remove()
    url = f"{live_server}/v1/tenants/{slug}/token"
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    with requests.Session() as http:
        # Warm every worker's cache with the old settings (no origin allowed).
        for _ in range(24):
            assert "Access-Control-Allow-Origin" not in http.options(url, headers=headers,
                                                                     timeout=10).headers
        with app.app_context():
            tenants.update_tenant(slug, cors_origins=(ORIGIN,))
            db.session.remove()
        time.sleep(app.config["TENANT_CACHE_S"] + 0.5)
        allowed = [http.options(url, headers=headers, timeout=10).headers.get(
            "Access-Control-Allow-Origin") for _ in range(24)]
    assert allowed == [ORIGIN] * 24
