"""Standard tooling against a live gunicorn: the curl examples and requests-oauthlib."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import jwt
import pytest
import requests
from oauthlib.oauth2 import LegacyApplicationClient
from requests_oauthlib import OAuth2Session

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import tenants
from tests import secret_registry
from tests.helpers import PROJECT_ROOT
from tests.helpers import utcnow

SCRIPTS = ["login.sh", "userinfo.sh", "refresh.sh", "userinfo.sh", "sessions.sh", "revoke.sh"]


@pytest.fixture
def live_user(app, request):
    # A slug of its own per test: gunicorn workers cache tenant settings for a few seconds,
    # and tables are emptied between tests (tenants are never deleted in production).
    slug = "ex-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings(slug, "Example"), utcnow())
        users.create_user(slug, "demo", "demo password", utcnow())
        db.session.remove()
    return slug, "demo", "demo password"


def _curl_env(live_server: str, tenant: str, tmp_path, username: str, password: str) -> dict:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"username": username, "password": password}))
    # USERNAME is set by many desktops: the scripts must not take it for theirs.
    return {**os.environ, "BATON_BASE_URL": live_server, "BATON_TENANT": tenant,
            "BATON_CURL_STATE": str(tmp_path / "tokens.json"),
            "BATON_CREDENTIALS": str(credentials), "USERNAME": "someone-else"}


def _script(name: str, env: dict, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(PROJECT_ROOT / "examples" / "curl" / name)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_examples_run_verbatim(live_server, live_user, tmp_path):
    """Run from another directory: the scripts find their files from their own folder."""
    tenant, username, password = live_user
    env = _curl_env(live_server, tenant, tmp_path, username, password)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for script in SCRIPTS:
        result = _script(script, env, elsewhere)
        assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
        assert result.stdout.strip(), f"{script} printed nothing"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_failed_login_keeps_saved_tokens(live_server, live_user, tmp_path):
    tenant, username, password = live_user
    env = _curl_env(live_server, tenant, tmp_path, username, password)
    assert _script("login.sh", env, tmp_path).returncode == 0
    saved = (tmp_path / "tokens.json").read_text()
    # A refresh token is a credential: the file is the user's alone, like the admin key's.
    assert (tmp_path / "tokens.json").stat().st_mode & 0o077 == 0
    failed = _script("login.sh", {**env, "BATON_PASSWORD": "wrong password"}, tmp_path)
    assert failed.returncode == 1
    assert "HTTP 400" in failed.stderr and "invalid_grant" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert (tmp_path / "tokens.json").read_text() == saved
    assert _script("userinfo.sh", env, tmp_path).returncode == 0  # the old tokens still work


def test_requests_oauthlib_password_and_refresh(live_server, live_user, monkeypatch):
    """A real OAuth client nobody here wrote: LegacyApplicationClient = password grant."""
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on loopback
    tenant, username, password = live_user
    base = f"{live_server}/v1/tenants/{tenant}"
    meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    oauth = OAuth2Session(client=LegacyApplicationClient(client_id="baton-example"))
    token = oauth.fetch_token(token_url=meta["token_endpoint"], username=username,
                              password=password, include_client_id=True)
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    # The session now authenticates requests with the access token.
    info = oauth.get(f"{base}/userinfo", timeout=10)
    assert info.status_code == 200 and info.json()["username"] == username
    refreshed = oauth.refresh_token(meta["token_endpoint"], client_id="baton-example")
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["session_id"] == token["session_id"]
    # The access token verifies with the published JWKS.
    jwks = jwt.PyJWKClient(meta["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(refreshed["access_token"])
    claims = jwt.decode(refreshed["access_token"], key, algorithms=["EdDSA"], audience="baton")
    assert claims["sid"] == token["session_id"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_admin_curl_examples_run_verbatim(live_server, live_user, database_url, tmp_path):
    """Create a key, create a user, list users, introspect, log out everywhere, introspect.

    Run from another directory: the admin scripts find the project from their own folder.
    """
    tenant = live_user[0]
    key_file = tmp_path / "admin-key"
    env = {**{k: v for k, v in os.environ.items() if k != "BATON_ENV"},
           "BATON_BASE_URL": live_server, "BATON_TENANT": tenant,
           "BATON_CURL_STATE": str(tmp_path / "tokens.json"),
           "BATON_ADMIN_KEY_FILE": str(key_file),
           # As next to `make run`: no BATON_ENV, so the script's development default is used
           # (with a real DATABASE_URL, development needs a secret of its own).
           "SECRET_KEY": "curl-examples-test-secret-0123456789abcdef",
           "DATABASE_URL": database_url, "BATON_USERNAME": "Newbie",
           "BATON_PASSWORD": "newbie password", "USERNAME": "someone-else"}

    def run(script: str, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(["bash", str(PROJECT_ROOT / "examples/curl" / script), *args],
                                cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=60, input=stdin)
        assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    missing = subprocess.run(["bash", str(PROJECT_ROOT / "examples/curl/admin-users-list.sh")],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "No admin key" in missing.stderr
    # ... and no request was sent without one
    assert "curl:" not in missing.stderr and "invalid_token" not in missing.stderr
    run("admin-key-create.sh")
    key = key_file.read_text().strip()
    secret_registry.remember(key, "newbie password")
    assert key.startswith("bat_") and (key_file.stat().st_mode & 0o077) == 0
    created = json.loads(run("admin-user-create.sh", "Newbie", stdin="newbie password\n"))
    assert created["username"] == "newbie"
    assert "newbie" in run("admin-users-list.sh")
    assert json.loads(run("admin-users-list.sh", "NEWBIE"))["users"][0]["id"] == created["id"]
    run("login.sh")
    assert json.loads(run("admin-introspect.sh"))["active"] is True
    assert "HTTP 204" in run("admin-logout-everywhere.sh", created["id"])
    assert json.loads(run("admin-introspect.sh")) == {"active": False}


def test_stock_clients_admin_api_and_introspection(live_server, live_user, app, monkeypatch):
    """Plain `requests` drives the admin API; requests-oauthlib logs the new user in."""
    from app.services.tenancy import admin_keys

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    tenant = live_user[0]
    with app.app_context():
        _, key = admin_keys.create_key(tenant, "backend", "admin", utcnow())
        db.session.remove()
    secret_registry.remember(key)
    base = f"{live_server}/v1/tenants/{tenant}"
    admin = requests.Session()
    admin.headers["Authorization"] = f"Bearer {key}"
    created = admin.post(f"{base}/admin/users", json={"username": "Carol",
                                                      "password": "carol's password"})
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    meta = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=10).json()
    oauth = OAuth2Session(client=LegacyApplicationClient(client_id="baton-example"))
    token = oauth.fetch_token(token_url=meta["token_endpoint"], username="carol",
                              password="carol's password", include_client_id=True)

    def active() -> bool:
        response = admin.post(meta["introspection_endpoint"],
                              data={"token": token["access_token"]}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["active"]

    assert active() is True
    assert admin.delete(f"{base}/admin/users/{user_id}/sessions", timeout=10).status_code == 204
    assert active() is False
    # The JWT itself still verifies against the JWKS: only introspection sees the logout.
    key_set = jwt.PyJWKClient(meta["jwks_uri"])
    signing = key_set.get_signing_key_from_jwt(token["access_token"])
    assert jwt.decode(token["access_token"], signing, algorithms=["EdDSA"], audience="baton")
