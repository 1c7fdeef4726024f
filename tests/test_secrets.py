"""Changing SECRET_KEY (SPEC §11): nothing is committed that cannot be answered, fallbacks keep
every session, `keys reencrypt`, and /readyz tells a node with a wrong secret apart."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import lookup as tenant_lookup
from app.services.tenancy import tenants
from tests.helpers import PROJECT_ROOT
from tests.helpers import TokenClient
from tests.helpers import utcnow
from tests.plugins.database import make_app
from tests.plugins.live_server import free_port
from tests.plugins.live_server import stop
from tests.plugins.secret_leaks import SERVER_LOGS

OLD = "the-old-secret-0123456789abcdefghijklmnop"
NEW = "the-new-secret-0123456789abcdefghijklmnop"


def state(app) -> dict:
    """What a refresh could have written: token rows, rotations, revocations."""
    with app.app_context():
        row = db.session.execute(sa.text(
            "SELECT (SELECT count(*) FROM refresh_tokens) AS tokens,"
            " (SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL) AS rotated,"
            " (SELECT count(*) FROM sessions) AS sessions,"
            " (SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL) AS revoked,"
            " (SELECT count(*) FROM login_attempts) + (SELECT count(*) FROM"
            "  login_address_attempts) AS attempts")).one()
        db.session.remove()
    return row._asdict()


@pytest.fixture
def old_app(app, database_url):  # `app`: migrated, and cleaned after each test
    app = make_app(database_url, SECRET_KEY=OLD)
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("acme", "Acme"), utcnow())
        users.create_user("acme", "alice", "correct horse", utcnow())
        db.session.remove()
    return app


def client_of(app) -> TokenClient:
    return TokenClient(app.test_client(), "acme", "alice", "correct horse")


def test_undecryptable_key_answers_503_and_writes_nothing(database_url, old_app):
    first = client_of(old_app).login().get_json()
    wrong = client_of(make_app(database_url, SECRET_KEY=NEW))
    before = state(old_app)
    for response in (wrong.refresh(first["refresh_token"]), wrong.login()):
        assert response.status_code == 503, response.get_json()
        assert response.get_json()["error"] == "temporarily_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
    assert state(old_app) == before  # no rotation, no session, no counted attempt
    # The right secret still refreshes that token: nobody was logged out.
    again = client_of(old_app).refresh(first["refresh_token"])
    assert again.status_code == 200


def test_fallback_keeps_keys_duplicates_and_reset_tokens(database_url, old_app):
    old = client_of(old_app)
    first = old.login().get_json()
    rotated = old.refresh(first["refresh_token"]).get_json()
    reset = old_app.test_cli_runner().invoke(args=["users", "reset-link", "acme", "alice"])
    reset_token = reset.output.splitlines()[1]

    new_app = make_app(database_url, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD])
    new = client_of(new_app)
    # A duplicate of a rotation made under the old secret gets the same pair.
    duplicate = new.refresh(first["refresh_token"])
    assert duplicate.status_code == 200
    assert duplicate.get_json()["refresh_token"] == rotated["refresh_token"]
    assert duplicate.get_json()["access_token"] == rotated["access_token"]
    # The signing key (encrypted under the old secret) still signs; the chain goes on.
    third = new.refresh(rotated["refresh_token"])
    assert third.status_code == 200
    assert new.refresh(third.get_json()["refresh_token"]).status_code == 200
    # A reset link issued under the old secret still works.
    response = new.client.post("/v1/tenants/acme/password/reset",
                               json={"token": reset_token, "new_password": "a new password"})
    assert response.status_code == 200, response.get_json()


def test_fallbacks_as_environment_text():
    import config

    settings = config.load_settings(config.TestConfig, environ={
        "SECRET_KEY_FALLBACKS": f"{OLD}, {NEW}  another-one-0123456789abcdefghijklmn"})
    assert settings.secrets[1:] == (OLD, NEW, "another-one-0123456789abcdefghijklmn")


def test_reencrypt_then_unreproducible_successor_is_refused_without_revoking(
        database_url, old_app, caplog):
    old = client_of(old_app)
    first = old.login().get_json()
    rotated = old.refresh(first["refresh_token"]).get_json()

    moving = make_app(database_url, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD])
    result = moving.test_cli_runner().invoke(args=["keys", "reencrypt"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 signing key(s)" in result.output
    again = moving.test_cli_runner().invoke(args=["keys", "reencrypt"])
    assert "Re-encrypted 0 signing key(s); 1 already under the current secret" in again.output

    # The old secret is gone now (without waiting the reuse interval out: the mistake the
    # operations guide warns about). The key decrypts, but the successor of a rotation made
    # under the old secret cannot be reproduced.
    new_only = client_of(make_app(database_url, SECRET_KEY=NEW))
    before = state(old_app)
    caplog.clear()
    duplicate = new_only.refresh(first["refresh_token"])
    assert duplicate.status_code == 400
    assert duplicate.get_json()["error"] == "invalid_grant"
    assert state(old_app) == before  # not judged a replay: nothing revoked
    assert any(r.levelname == "ERROR" and "successor mismatch" in r.getMessage()
               for r in caplog.records)
    # The session's current token refreshes as before.
    assert new_only.refresh(rotated["refresh_token"]).status_code == 200
    # And the old secret alone can no longer decrypt the key: reencrypt really moved it.
    with old_app.app_context():  # its cached ciphertext expires (TENANT_CACHE_S) first
        tenant_lookup.forget()
    assert client_of(old_app).login().status_code == 503


def test_reencrypt_reports_keys_no_secret_decrypts(database_url, old_app):
    result = make_app(database_url, SECRET_KEY=NEW).test_cli_runner().invoke(
        args=["keys", "reencrypt"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: 1 signing key(s) no configured secret decrypts")


def test_readyz_follows_the_secret_not_one_damaged_key(database_url, old_app):
    assert old_app.test_client().get("/readyz").status_code == 200
    wrong = make_app(database_url, SECRET_KEY=NEW).test_client().get("/readyz")
    assert wrong.status_code == 503
    assert "secrets" in wrong.get_json()["error_description"]
    # One tenant's key is damaged (no node can decrypt it): that tenant answers 503, but
    # the node stays ready for every other tenant.
    with old_app.app_context():
        tenants.create_tenant(tenants.TenantSettings("beta", "Beta"), utcnow())
        # One byte flipped (XOR): writing 0x00 changed nothing when the byte was 0x00 already
        # (one run in 256), and the tenant's login then succeeded.
        db.session.execute(sa.text(
            "UPDATE signing_keys SET private_key_encrypted = set_byte(private_key_encrypted,"
            " 19, get_byte(private_key_encrypted, 19) # 1)"
            " WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'beta')"))
        db.session.commit()
        users.create_user("beta", "bob", "bob's password", utcnow())
        db.session.remove()
    fresh = make_app(database_url, SECRET_KEY=OLD)  # its per-process caches are cold
    assert fresh.test_client().get("/readyz").status_code == 200
    beta = TokenClient(fresh.test_client(), "beta", "bob", "bob's password").login()
    assert beta.status_code == 503
    assert client_of(fresh).login().status_code == 200


def test_readyz_is_503_when_most_keys_need_a_missing_fallback(database_url, old_app):
    with old_app.app_context():
        for slug in ("beta", "gamma"):
            tenants.create_tenant(tenants.TenantSettings(slug, slug), utcnow())
        db.session.remove()
    # Mid-change: acme's key was rotated under the new secret; beta's and gamma's were not.
    both = make_app(database_url, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=[OLD])
    assert both.test_cli_runner().invoke(args=["keys", "rotate", "acme"]).exit_code == 0
    assert both.test_client().get("/readyz").status_code == 200
    # A node missing the fallback decrypts one key of three: not ready.
    new_only = make_app(database_url, SECRET_KEY=NEW)
    assert new_only.test_client().get("/readyz").status_code == 503


# --- the scenario of the report, on a real gunicorn restarted with another secret ---------

def _gunicorn(database_url: str, tmp_path, **env) -> tuple[subprocess.Popen, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / f"gunicorn-{port}.log"
    SERVER_LOGS.append(log_path)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--workers", "2",
             "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "BATON_ENV": "test", "BATON_BASE_URL": base,
                 "DATABASE_URL": database_url, **env})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log_path.read_text()
        try:
            requests.get(f"{base}/healthz", timeout=5)
            return proc, base
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"gunicorn did not start:\n{log_path.read_text()}")


@pytest.mark.live
def test_live_restart_with_another_secret_logs_nobody_out(database_url, old_app, tmp_path):
    proc, base = _gunicorn(database_url, tmp_path, SECRET_KEY=OLD)
    try:
        token_url = f"{base}/v1/tenants/acme/token"
        first = requests.post(token_url, timeout=30, data={
            "grant_type": "password", "username": "alice", "password": "correct horse"}).json()
    finally:
        stop(proc)

    # Restarted with a new secret and no fallback: not ready, and a refresh changes nothing.
    proc, base = _gunicorn(database_url, tmp_path, SECRET_KEY=NEW)
    try:
        assert requests.get(f"{base}/readyz", timeout=30).status_code == 503
        before = state(old_app)
        for _ in range(2):  # the client's retry too
            response = requests.post(f"{base}/v1/tenants/acme/token", timeout=30, data={
                "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
            assert response.status_code == 503, response.text
        assert state(old_app) == before
    finally:
        stop(proc)

    # The documented procedure: the new secret with the old one as a fallback.
    proc, base = _gunicorn(database_url, tmp_path, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=OLD)
    try:
        assert requests.get(f"{base}/readyz", timeout=30).status_code == 200
        response = requests.post(f"{base}/v1/tenants/acme/token", timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
        assert response.status_code == 200, response.text
    finally:
        stop(proc)


def _webhook_secret_readable(app) -> bool:
    """Can this app's secrets decrypt the stored webhook signing secret?"""
    from cryptography.exceptions import InvalidTag

    from app.crypto import decrypt_any
    from app.models import Webhook
    from app.runtime import runtime
    from app.services.audit.webhooks import secret_context

    with app.app_context():
        row = db.session.execute(sa.select(Webhook.tenant_id, Webhook.secret_encrypted)).one()
        db.session.remove()
        try:
            decrypt_any(runtime().key_encryption_keys, bytes(row.secret_encrypted),
                        secret_context(row.tenant_id))
        except InvalidTag:
            return False
    return True


def test_webhook_secret_follows_fallbacks_and_reencrypt(database_url, old_app):
    """Webhook signing secrets are encrypted with the service secret like signing keys: a
    fallback keeps them readable and `keys reencrypt` moves them to the new secret."""
    from app.services.tenancy import webhook_endpoints

    with old_app.app_context():
        webhook_endpoints.set_webhook("acme", "http://127.0.0.1:9/hook", utcnow())
        db.session.remove()
    assert not _webhook_secret_readable(make_app(database_url, SECRET_KEY=NEW))
    switched = make_app(database_url, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=OLD)
    assert _webhook_secret_readable(switched)
    result = switched.test_cli_runner().invoke(args=["keys", "reencrypt"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 1 webhook secret(s)" in result.output
    assert _webhook_secret_readable(make_app(database_url, SECRET_KEY=NEW))


def test_totp_secrets_follow_fallbacks_and_reencrypt(database_url, old_app):
    """TOTP secrets are encrypted with the service secret like signing keys (SPEC §13.1): a
    fallback keeps them usable and `keys reencrypt` moves them to the new secret."""
    from datetime import timedelta

    import pyotp

    from app.services.accounts import factors
    from app.services.audit import events
    from app.services.errors import KeyUnavailable
    from app.services.tenancy.lookup import lookup_tenant
    from app.services.unit_of_work import transaction

    now = utcnow()
    with old_app.app_context():
        with transaction():
            tenant = lookup_tenant("acme")
            enrolment = factors.start_totp(tenant, 1, "alice", None, now)
            assert factors.finish_totp(tenant, 1, enrolment.id,
                                       pyotp.TOTP(enrolment.secret).at(now - timedelta(seconds=30)),
                                       now, events.CLI)
        db.session.remove()

    def accepted(app, steps: int) -> bool:
        with app.app_context():
            with transaction():
                tenant = lookup_tenant("acme")
                code = pyotp.TOTP(enrolment.secret).at(now + timedelta(seconds=30 * steps))
                found = factors.verify_totp(tenant, 1, code,
                                            now + timedelta(seconds=30 * steps))
            db.session.remove()
        return found is not None

    # Without the old secret the factor is not "wrong code" but the operator's mistake:
    # KeyUnavailable (503), the transaction rolled back, no answer counted against the user.
    with pytest.raises(KeyUnavailable):
        accepted(make_app(database_url, SECRET_KEY=NEW), 0)
    switched = make_app(database_url, SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=OLD)
    assert accepted(switched, 0)
    result = switched.test_cli_runner().invoke(args=["keys", "reencrypt"])
    assert result.exit_code == 0, result.output
    assert "1 TOTP secret(s)" in result.output
    assert accepted(make_app(database_url, SECRET_KEY=NEW), 1)
