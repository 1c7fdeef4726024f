"""GET …/userinfo, GET …/sessions, DELETE …/sessions/{id} (SPEC §4.2, RFC 6750)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from app.extensions import db
from app.services.accounts import users
from app.services.signin import password_grant
from app.services.tenancy import tenants
from tests.helpers import utcnow

WWW_AUTHENTICATE = 'Bearer error="invalid_token"'


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def assert_invalid_token(response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == WWW_AUTHENTICATE
    assert response.get_json()["error"] == "invalid_token"


@pytest.fixture
def other_tenant(app):
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("globex", "Globex"), utcnow())
        users.create_user("globex", "alice", "correct horse", utcnow())
        db.session.remove()
    return "globex"


def test_userinfo(client, tokens):
    access = tokens.login().get_json()["access_token"]
    response = client.get("/v1/tenants/acme/userinfo", headers=bearer(access))
    assert response.status_code == 200
    assert response.get_json() == {"sub": "1", "username": "alice", "tenant": "acme"}


def _tampered(token: str) -> str:
    head, payload, signature = token.split(".")
    return ".".join([head, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])


@pytest.mark.parametrize("make_header", [
    lambda access: {},
    lambda access: {"Authorization": "Basic dXNlcjpwYXNz"},
    lambda access: {"Authorization": "Bearer"},
    lambda access: {"Authorization": "Bearer not-a-jwt"},
    lambda access: bearer(_tampered(access)),
    lambda access: bearer(access + "x"),
    lambda access: bearer("e30.e30.e30"),
    lambda access: bearer("x" * 5000),
])
def test_userinfo_rejects_bad_tokens(client, tokens, make_header):
    access = tokens.login().get_json()["access_token"]
    assert_invalid_token(client.get("/v1/tenants/acme/userinfo", headers=make_header(access)))


def test_userinfo_rejects_expired_token(ctx, client, user):
    issued = password_grant.login("acme", "alice", "correct horse",
                       now=utcnow() - timedelta(seconds=1000))
    assert_invalid_token(client.get("/v1/tenants/acme/userinfo",
                                    headers=bearer(issued.access_token)))


def test_userinfo_rejects_other_tenants_token(client, tokens, other_tenant):
    access = tokens.login().get_json()["access_token"]
    assert_invalid_token(client.get(f"/v1/tenants/{other_tenant}/userinfo",
                                    headers=bearer(access)))


def test_userinfo_rejects_revoked_session(client, tokens):
    body = tokens.login().get_json()
    client.post("/v1/tenants/acme/revoke", data={"token": body["refresh_token"]})
    assert_invalid_token(client.get("/v1/tenants/acme/userinfo",
                                    headers=bearer(body["access_token"])))


def test_sessions_lists_live_sessions_and_marks_current(client, tokens):
    first = tokens.login(headers={"User-Agent": "tab-one"}).get_json()
    second = tokens.login(headers={"User-Agent": "tab-two"}).get_json()
    gone = tokens.login().get_json()
    client.post("/v1/tenants/acme/revoke", data={"token": gone["refresh_token"]})
    response = client.get("/v1/tenants/acme/sessions", headers=bearer(second["access_token"]))
    assert response.status_code == 200
    listed = {s["id"]: s for s in response.get_json()["sessions"]}
    assert set(listed) == {first["session_id"], second["session_id"]}
    assert listed[second["session_id"]]["current"] is True
    assert listed[first["session_id"]]["current"] is False
    assert listed[first["session_id"]]["user_agent"] == "tab-one"
    assert {"created_at", "last_used_at", "expires_at"} <= set(listed[first["session_id"]])


def test_delete_session_revokes_it(client, tokens):
    first = tokens.login().get_json()
    second = tokens.login().get_json()
    response = client.delete(f"/v1/tenants/acme/sessions/{first['session_id']}",
                             headers=bearer(second["access_token"]))
    assert response.status_code == 204
    assert tokens.refresh(first["refresh_token"]).status_code == 400
    assert tokens.refresh(second["refresh_token"]).status_code == 200


@pytest.mark.parametrize("session_id", [
    "00000000-0000-0000-0000-000000000000", "not-a-uuid",
])
def test_delete_unknown_session_is_404(client, tokens, session_id):
    access = tokens.login().get_json()["access_token"]
    response = client.delete(f"/v1/tenants/acme/sessions/{session_id}", headers=bearer(access))
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"


def test_delete_other_users_session_is_404(app, client, tokens):
    with app.app_context():
        users.create_user("acme", "bob", "hunter2hunter2", utcnow())
        db.session.remove()
    alice = tokens.login().get_json()
    bob = tokens.login("bob", "hunter2hunter2").get_json()
    response = client.delete(f"/v1/tenants/acme/sessions/{alice['session_id']}",
                             headers=bearer(bob["access_token"]))
    assert response.status_code == 404
    assert tokens.refresh(alice["refresh_token"]).status_code == 200


def test_sessions_require_a_valid_token(client, tokens, other_tenant):
    access = tokens.login().get_json()["access_token"]
    assert_invalid_token(client.get("/v1/tenants/acme/sessions"))
    assert_invalid_token(client.get(f"/v1/tenants/{other_tenant}/sessions",
                                    headers=bearer(access)))
    assert_invalid_token(client.delete("/v1/tenants/acme/sessions/x"))
