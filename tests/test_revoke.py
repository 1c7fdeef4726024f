"""POST …/revoke (RFC 7009), including a revoke racing a refresh."""
from __future__ import annotations

import pytest
import requests

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import tenants
from tests.helpers import chain_violations
from tests.helpers import utcnow
from tests.parallel import run_together


def revoke(client, token, **extra):
    return client.post("/v1/tenants/acme/revoke", data={"token": token, **extra})


def test_revoking_refresh_token_kills_session(client, tokens):
    body = tokens.login().get_json()
    response = revoke(client, body["refresh_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert tokens.refresh(body["refresh_token"]).status_code == 400


def test_revoking_rotated_token_kills_successor(client, tokens):
    first = tokens.login().get_json()
    second = tokens.refresh(first["refresh_token"]).get_json()
    assert revoke(client, first["refresh_token"]).status_code == 200
    assert tokens.refresh(second["refresh_token"]).status_code == 400


@pytest.mark.parametrize("hint", [None, "access_token", "refresh_token", "something_else"])
def test_revoking_access_token_kills_its_session(client, tokens, hint):
    body = tokens.login().get_json()
    extra = {"token_type_hint": hint} if hint else {}
    assert revoke(client, body["access_token"], **extra).status_code == 200
    assert tokens.refresh(body["refresh_token"]).status_code == 400


@pytest.mark.parametrize("token", ["unknown", "x" * 43, "a.b.c"])
def test_unknown_token_is_200(client, tenant, token):
    assert revoke(client, token).status_code == 200


def test_json_body(client, tokens):
    body = tokens.login().get_json()
    response = client.post("/v1/tenants/acme/revoke", json={"token": body["refresh_token"]})
    assert response.status_code == 200
    assert tokens.refresh(body["refresh_token"]).status_code == 400


@pytest.mark.parametrize("data, status", [({}, 400), ({"token": ""}, 400),
                                          ({"token": "x" * 600}, 400)])
def test_bad_requests(client, tenant, data, status):
    response = client.post("/v1/tenants/acme/revoke", data=data)
    assert response.status_code == status
    assert response.get_json()["error"] == "invalid_request"


def test_unknown_tenant_is_404(client, tenant):
    assert client.post("/v1/tenants/nope/revoke", data={"token": "x"}).status_code == 404


def test_other_tenants_token_is_ignored(app, client, tokens):
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("globex", "Globex"), utcnow())
        db.session.remove()
    body = tokens.login().get_json()
    for token in (body["refresh_token"], body["access_token"]):
        assert client.post("/v1/tenants/globex/revoke", data={"token": token}).status_code == 200
    assert tokens.refresh(body["refresh_token"]).status_code == 200


def test_revoke_racing_refresh_leaves_nothing_alive(app, live_server):
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("revrace", "x"), utcnow())
        users.create_user("revrace", "u", "hunter2hunter2", utcnow())
        db.session.remove()
    base = f"{live_server}/v1/tenants/revrace"
    for _ in range(25):
        body = requests.post(f"{base}/token", data={
            "grant_type": "password", "username": "u", "password": "hunter2hunter2"},
            timeout=30).json()
        token = body["refresh_token"]
        results = run_together(_race_step, [(base, token, "refresh"), (base, token, "revoke")])
        assert results[1][0] == 200
        successor = results[0][1]  # present if the refresh won the race
        for candidate in filter(None, [token, successor]):
            assert _race_step(base, candidate, "refresh")[0] == 400
    with app.app_context():
        assert chain_violations() == {"tokens_with_two_successors": 0,
                                      "sessions_with_two_current": 0}
        db.session.remove()


def _race_step(base: str, token: str, action: str):
    if action == "revoke":
        return requests.post(f"{base}/revoke", data={"token": token}, timeout=30).status_code, None
    response = requests.post(f"{base}/token", timeout=30, data={
        "grant_type": "refresh_token", "refresh_token": token})
    return response.status_code, response.json().get("refresh_token")


def test_revoking_a_revoked_session_again_reports_nothing(app, client, tokens, admin, caplog):
    """A second revocation (the same token again, its access token, the admin API) changes
    nothing, so it writes no event and logs no security event: audit trails count real ones."""
    import sqlalchemy as sa

    body = tokens.login().get_json()
    caplog.set_level("INFO", logger="app.security")
    assert revoke(client, body["refresh_token"]).status_code == 200
    assert revoke(client, body["refresh_token"]).status_code == 200
    assert revoke(client, body["access_token"]).status_code == 200
    assert admin("DELETE", f"/sessions/{body['session_id']}").status_code == 204
    assert admin("PATCH", "/users/1", json={"disabled": True}).status_code == 200
    assert admin("PATCH", "/users/1", json={"disabled": True}).status_code == 200
    logged = [r.event for r in caplog.records if r.name == "app.security"]
    assert logged.count("session_revoked") == 1, logged
    assert logged.count("user_disabled") == 1, logged
    with app.app_context():
        kinds = db.session.execute(sa.text(
            "SELECT type FROM events WHERE type IN ('session.revoked', 'user.disabled')")
        ).scalars().all()
        db.session.remove()
    assert sorted(kinds) == ["session.revoked", "user.disabled"]
