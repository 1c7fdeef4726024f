"""An admin disable or password change racing 16 refreshing processes (gunicorn, 4 workers).

Afterwards no refresh token of the user may work, and no chain may have forked: the admin
path takes the same locks in the same order as rotation (user row, then session rows).
"""
from __future__ import annotations

import time

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import admin_keys
from app.services.tenancy import tenants
from tests import secret_registry
from tests.helpers import chain_violations
from tests.helpers import http_refresh
from tests.helpers import utcnow
from tests.parallel import run_together

PASSWORD = "correct horse"


def refresh_until_refused(base: str, tenant: str, token: str, seconds: float) -> list[str]:
    """Refresh with the newest token until refused (or time is up); every token received."""
    received = [token]
    deadline = time.monotonic() + seconds
    with requests.Session() as http:
        while time.monotonic() < deadline:
            response = http_refresh(base, tenant, received[-1], http)
            if response.status_code != 200:
                assert response.status_code in (400, 503), response.text
                break
            received.append(response.json()["refresh_token"])
    return received


def admin_call(base: str, tenant: str, key: str, change: str, delay: float) -> list[str]:
    time.sleep(delay)  # let the refreshers get going
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{base}/v1/tenants/{tenant}/admin/users/1"
    if change == "disable":
        response = requests.patch(url, json={"disabled": True}, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
    else:
        response = requests.put(f"{url}/password", json={"password": "a brand new one"},
                                headers=headers, timeout=30)
        assert response.status_code == 204, response.text
    return []


@pytest.mark.parametrize("change", ["disable", "password"])
def test_admin_change_racing_16_refreshing_processes(app, live_server, change):
    slug = f"race-{change}"
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings(slug, slug), utcnow())
        users.create_user(slug, "victim", PASSWORD, utcnow())
        _, key = admin_keys.create_key(slug, None, "admin", utcnow())
        db.session.remove()
    secret_registry.remember(key)
    # Sixteen sessions, one process refreshing each (two on one chain would fall behind
    # each other and end their session as a replay, hiding what the admin change did).
    firsts = []
    for _ in range(16):
        response = requests.post(f"{live_server}/v1/tenants/{slug}/token", data={
            "grant_type": "password", "username": "victim", "password": PASSWORD}, timeout=30)
        assert response.status_code == 200, response.text
        firsts.append(response.json()["refresh_token"])
    jobs = [(refresh_until_refused, (live_server, slug, firsts[i], 20.0)) for i in range(16)]
    jobs.append((admin_call, (live_server, slug, key, change, 0.5)))
    results = run_together(_run, jobs)
    assert sum(len(tokens) for tokens in results[:16]) > 16, "no refresh happened before"
    # First what the database says (the presentations below could revoke by replay).
    with app.app_context():
        live = db.session.execute(sa.text(
            "SELECT count(*) FROM sessions s JOIN tenants t ON t.id = s.tenant_id"
            " WHERE t.slug = :slug AND s.revoked_at IS NULL"), {"slug": slug}).scalar_one()
        violations = chain_violations()
        db.session.remove()
    assert live == 0
    assert violations == {"tokens_with_two_successors": 0, "sessions_with_two_current": 0}
    # Then every token a client holds, newest first: none may be refreshed.
    newest_first = [tokens[-1] for tokens in results[:16]] + [
        token for tokens in results[:16] for token in reversed(tokens[:-1])]
    with requests.Session() as http:
        for token in newest_first:
            response = http.post(f"{live_server}/v1/tenants/{slug}/token", data={
                "grant_type": "refresh_token", "refresh_token": token}, timeout=30)
            assert response.status_code == 400, "a refresh token outlived the admin change"


def _run(target, args):
    return target(*args)
