"""User lifecycle (SPEC §7) and password reset (SPEC §4.2)."""
from __future__ import annotations

import time

import pytest

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import tenants
from tests.helpers import utcnow
from tests.plugins.database import make_app

INVALID_GRANT = "invalid_grant"


def reset_token(runner, tenant="acme", username="alice") -> str:
    result = runner.invoke(args=["users", "reset-link", tenant, username])
    assert result.exit_code == 0, result.output
    return result.output.splitlines()[1].strip()


def reset(client, token, new_password="brand new pw", tenant="acme"):
    return client.post(f"/v1/tenants/{tenant}/password/reset",
                       json={"token": token, "new_password": new_password})


def test_disable_revokes_sessions_and_blocks_login(runner, tokens):
    sessions = [tokens.login().get_json() for _ in range(3)]
    result = runner.invoke(args=["users", "disable", "acme", "alice"])
    assert result.exit_code == 0, result.output
    assert "revoked 3 session(s)" in result.output
    for body in sessions:
        assert tokens.refresh(body["refresh_token"]).status_code == 400
    assert tokens.login().get_json()["error"] == INVALID_GRANT


def test_set_password_revokes_sessions(runner, tokens):
    body = tokens.login().get_json()
    result = runner.invoke(args=["users", "set-password", "acme", "alice", "--password-stdin"],
                           input="another pw\n")
    assert result.exit_code == 0, result.output
    assert tokens.refresh(body["refresh_token"]).status_code == 400
    assert tokens.login().status_code == 400
    assert tokens.login(password="another pw").status_code == 200


@pytest.mark.parametrize("command", ["disable", "set-password", "reset-link"])
def test_unknown_user_is_one_line_error(runner, tenant, command):
    result = runner.invoke(args=["users", command, "acme", "nobody", "--password-stdin"]
                           if command == "set-password" else ["users", command, "acme", "nobody"],
                           input="hunter2hunter2\n")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "nobody" in lines[0]


def test_reset_flow(runner, client, tokens):
    sessions = [tokens.login().get_json() for _ in range(2)]
    token = reset_token(runner)
    response = reset(client, token)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    for body in sessions:
        assert tokens.refresh(body["refresh_token"]).status_code == 400
    assert tokens.login(password="brand new pw").status_code == 200
    # Single use: the hash changed, so the same token is dead.
    assert reset(client, token, "third pw").get_json()["error"] == INVALID_GRANT
    assert tokens.login(password="brand new pw").status_code == 200


def test_reset_token_dies_when_password_changes_otherwise(runner, client, tokens):
    token = reset_token(runner)
    runner.invoke(args=["users", "set-password", "acme", "alice", "--password-stdin"],
                  input="changed pw\n")
    assert reset(client, token).get_json()["error"] == INVALID_GRANT


def _tamper(token: str) -> str:
    return token[:-2] + ("AA" if token[-2:] != "AA" else "BB")


@pytest.mark.parametrize("mutate", [
    _tamper,
    lambda t: "x" + t,
    lambda t: t.split(".")[0],
    lambda t: "garbage",
])
def test_tampered_reset_tokens_rejected(runner, client, user, mutate):
    response = reset(client, mutate(reset_token(runner)))
    assert response.status_code == 400
    assert response.get_json()["error"] == INVALID_GRANT


def test_cross_tenant_reset_rejected(app, runner, client, user):
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("globex", "Globex"), utcnow())
        users.create_user("globex", "alice", "correct horse", utcnow())
        db.session.remove()
    response = reset(client, reset_token(runner), tenant="globex")
    assert response.get_json()["error"] == INVALID_GRANT


@pytest.mark.slow
def test_expired_reset_token_rejected(database_url, user):
    app = make_app(database_url, RESET_TOKEN_TTL_S=1)
    token = reset_token(app.test_cli_runner())
    time.sleep(2.1)
    assert reset(app.test_client(), token).get_json()["error"] == INVALID_GRANT


def test_token_signed_with_another_purpose_rejected(app, client, user):
    from itsdangerous import URLSafeTimedSerializer

    forged = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="other-purpose").dumps(
        {"t": 1, "u": 1, "h": "0" * 32})
    assert reset(client, forged).get_json()["error"] == INVALID_GRANT


@pytest.mark.parametrize("body", [{}, {"token": "x"}, {"new_password": "x"},
                                  {"token": "x", "new_password": ""}])
def test_reset_missing_parameters(client, user, body):
    response = client.post("/v1/tenants/acme/password/reset", json=body)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_login_racing_a_disable_never_leaves_a_live_session(app, tokens, monkeypatch):
    """The password hash runs outside any transaction; a disable that lands meanwhile wins."""
    passwords = app.extensions["baton"].passwords
    real_verify = passwords.verify

    def verify_then_disable(password_hash, password):
        valid = real_verify(password_hash, password)
        with app.app_context():  # another request, committed while this one hashes
            users.disable_user("acme", "alice", utcnow())
            db.session.remove()
        return valid

    monkeypatch.setattr(passwords, "verify", verify_then_disable)
    assert tokens.login().get_json()["error"] == INVALID_GRANT
    with app.app_context():
        import sqlalchemy as sa

        live = db.session.execute(sa.text(
            "SELECT count(*) FROM sessions WHERE revoked_at IS NULL")).scalar_one()
        db.session.remove()
    assert live == 0


def test_spent_reset_token_is_refused_before_hashing(app, runner, client, user, monkeypatch):
    token = reset_token(runner)
    assert reset(client, token).status_code == 200
    hashed = []
    passwords = app.extensions["baton"].passwords
    real_hash = passwords.hash
    monkeypatch.setattr(passwords, "hash", lambda pw: hashed.append(1) or real_hash(pw))
    for _ in range(3):  # a spent token costs no CPU, however often it is sent
        assert reset(client, token, "another new pw").get_json()["error"] == INVALID_GRANT
    assert hashed == []


def test_disabled_user_cannot_reset(runner, client, user):
    token = reset_token(runner)
    assert runner.invoke(args=["users", "disable", "acme", "alice"]).exit_code == 0
    response = reset(client, token)
    assert response.status_code == 400
    # The same answer as for any invalid token: no oracle on the account's state.
    assert response.get_json() == reset(client, "not-a-token").get_json()
