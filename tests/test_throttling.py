"""Brute-force throttling (SPEC §4.1 429 slow_down), shared by all gunicorn workers."""
from __future__ import annotations

import time

import pytest
import requests

from app.extensions import db
from app.services.accounts import users
from app.services.signin.throttling import UNKNOWN_NETWORK
from app.services.signin.throttling import client_network
from app.services.tenancy import tenants
from tests.helpers import utcnow
from tests.parallel import run_together
from tests.plugins.database import make_app


def _attempt(base: str, username: str, password: str, n: int) -> list[int]:
    with requests.Session() as http:
        return [http.post(f"{base}/token", timeout=30, data={
            "grant_type": "password", "username": username, "password": password}).status_code
            for _ in range(n)]


def test_limit_holds_in_total_across_workers(app, live_server):
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("guarded", "Guarded"), utcnow())
        users.create_user("guarded", "victim", "the real password", utcnow())
        db.session.remove()
    base = f"{live_server}/v1/tenants/guarded"
    results = run_together(_attempt, [(base, "victim", "guess!", 3)] * 8)
    statuses = sorted(s for r in results for s in r)
    # Default limit: 5 per username per window, in total over 4 workers and 8 clients.
    assert statuses.count(400) == 5 and statuses.count(429) == 19, statuses
    # Even the right password is refused (without being checked) until the window ends.
    response = requests.post(f"{base}/token", timeout=30, data={
        "grant_type": "password", "username": "victim", "password": "the real password"})
    assert response.status_code == 429
    assert response.json()["error"] == "slow_down"
    assert 1 <= int(response.headers["Retry-After"]) <= 300


@pytest.fixture
def strict_app(database_url, tenant):
    app = make_app(database_url, LOGIN_MAX_PER_USER_ADDRESS=3, LOGIN_MAX_PER_USER=5,
                   LOGIN_MAX_PER_ADDRESS=6, LOGIN_WINDOW_S=2)
    with app.app_context():
        users.create_user("acme", "alice", "correct horse", utcnow())
        users.create_user("acme", "bob", "bob's password", utcnow())
        tenants.create_tenant(tenants.TenantSettings("beta", "Beta"), utcnow())
        users.create_user("beta", "alice", "beta horse", utcnow())
        db.session.remove()
    return app


def login(client, username, password, address="10.0.0.1", tenant="acme"):
    return client.post(f"/v1/tenants/{tenant}/token", environ_base={"REMOTE_ADDR": address},
                       data={"grant_type": "password", "username": username,
                             "password": password})


def test_success_clears_the_username_counter(strict_app):
    client = strict_app.test_client()
    for _ in range(2):
        assert login(client, "alice", "wrong").status_code == 400
    assert login(client, "alice", "correct horse").status_code == 200
    for _ in range(3):  # a fresh allowance after the success
        assert login(client, "alice", "wrong").status_code == 400
    assert login(client, "alice", "wrong").status_code == 429


def test_per_address_limit_spans_usernames(strict_app):
    client = strict_app.test_client()
    statuses = [login(client, name, "wrong").status_code
                for name in ("alice", "bob", "carol", "dave", "erin", "frank", "gina")]
    assert statuses == [400] * 6 + [429]
    # Another address is not affected.
    assert login(client, "bob", "bob's password", address="10.0.0.2").status_code == 200


def test_per_username_limit_spans_addresses(strict_app):
    # A distributed guesser: 3 per address is not reached, 5 per username is.
    client = strict_app.test_client()
    statuses = [login(client, "alice", "wrong", address=f"10.1.0.{i % 3}").status_code
                for i in range(6)]
    assert statuses == [400] * 5 + [429]
    # Another username from the same addresses is not affected.
    assert login(client, "bob", "bob's password", address="10.1.0.1").status_code == 200


def test_username_counter_outlasts_one_address(strict_app):
    # The per-(username, address) limit trips first for one guesser; the owner elsewhere
    # still gets in, since the username's own allowance is larger.
    client = strict_app.test_client()
    assert [login(client, "alice", "wrong", address="10.2.0.1").status_code
            for _ in range(4)] == [400, 400, 400, 429]
    assert login(client, "alice", "correct horse", address="10.2.0.2").status_code == 200


def test_ipv6_addresses_of_one_slash_64_share_a_limit(strict_app):
    client = strict_app.test_client()
    statuses = [login(client, f"user{i}", "wrong", address=f"2001:db8:0:7::{i:x}").status_code
                for i in range(1, 8)]
    assert statuses == [400] * 6 + [429]
    # The neighbouring /64 is another subscriber.
    assert login(client, "bob", "bob's password", address="2001:db8:0:8::1").status_code == 200


def test_ipv4_mapped_address_counts_as_ipv4(strict_app):
    client = strict_app.test_client()
    addresses = ["10.3.0.1", "::ffff:10.3.0.1"] * 3 + ["::ffff:10.3.0.1"]
    statuses = [login(client, f"user{i}", "wrong", address=a).status_code
                for i, a in enumerate(addresses)]
    assert statuses == [400] * 6 + [429]


def test_per_address_limit_spans_tenants(strict_app):
    client = strict_app.test_client()
    statuses = [login(client, f"user{i}", "wrong", address="10.4.0.1",
                      tenant=("acme", "beta")[i % 2]).status_code for i in range(7)]
    assert statuses == [400] * 6 + [429]


def test_client_network_keys():
    assert client_network("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"
    assert client_network("2001:DB8:1:2::ffff") == "2001:db8:1:2::/64"
    assert client_network("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_network("192.0.2.7") == "192.0.2.7"
    assert client_network("fe80::1%eth0") == "fe80::/64"
    assert client_network(None) == client_network("") == UNKNOWN_NETWORK == "unknown"


def test_unknown_usernames_are_throttled_too(strict_app):
    client = strict_app.test_client()
    statuses = [login(client, "ghost", "x", address="10.0.0.3").status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]


@pytest.mark.slow
def test_window_ends(strict_app):
    client = strict_app.test_client()
    for _ in range(3):
        login(client, "alice", "wrong")
    assert login(client, "alice", "correct horse").status_code == 429
    time.sleep(2.1)
    assert login(client, "alice", "correct horse").status_code == 200


def test_throttled_login_does_not_hash(strict_app, monkeypatch):
    client = strict_app.test_client()
    for _ in range(3):
        login(client, "alice", "wrong")
    calls = []
    passwords = strict_app.extensions["baton"].passwords
    monkeypatch.setattr(passwords, "verify", lambda *a: calls.append(a) or False)
    assert login(client, "alice", "wrong").status_code == 429
    assert calls == []


def test_forwarded_for_only_from_trusted_proxy(database_url, tenant):
    trusting = make_app(database_url, TRUSTED_PROXIES=1, LOGIN_MAX_PER_ADDRESS=2)
    naive = make_app(database_url, LOGIN_MAX_PER_ADDRESS=2)

    def statuses(app, forwarded):
        client = app.test_client()
        return [client.post("/v1/tenants/acme/token", headers={"X-Forwarded-For": f},
                            data={"grant_type": "password", "username": f"user{i}",
                                  "password": "x"}).status_code
                for i, f in enumerate(forwarded)]

    # Behind a trusted proxy every forwarded client has its own allowance ...
    assert statuses(trusting, ["1.1.1.1", "2.2.2.2", "3.3.3.3"]) == [400, 400, 400]
    # ... while without one a client cannot dodge the limit by inventing the header.
    assert statuses(naive, ["4.4.4.4", "5.5.5.5", "6.6.6.6"]) == [400, 400, 429]


def test_requests_without_an_address_share_the_address_limits(strict_app, caplog):
    """gunicorn on a unix socket with no trusted proxy: REMOTE_ADDR is empty. The address
    limits still apply, to all such requests together, and the operator is told once."""
    client = strict_app.test_client()
    with caplog.at_level("WARNING", logger="app"):
        # Per (username, address), 3: before the username's own 5 is reached.
        assert [login(client, "alice", "wrong", address="").status_code
                for _ in range(4)] == [400, 400, 400, 429]
        # Per address across usernames and tenants, 6 (3 counted above, the 429 not kept).
        statuses = [login(client, f"user{i}", "wrong", address="",
                          tenant=("acme", "beta")[i % 2]).status_code for i in range(4)]
        assert statuses == [400, 400, 400, 429]
        assert login(client, "bob", "bob's password", address="").status_code == 429
        assert login(client, "bob", "bob's password", address="10.5.0.1").status_code == 200
    said = [r for r in caplog.records if getattr(r, "event", None) == "client_address_unknown"]
    assert len(said) == 1 and "BATON_TRUSTED_PROXIES" in said[0].getMessage()


def test_no_warning_while_addresses_are_known(strict_app, caplog):
    client = strict_app.test_client()
    with caplog.at_level("WARNING", logger="app"):
        assert login(client, "alice", "correct horse").status_code == 200
    assert not [r for r in caplog.records
                if getattr(r, "event", None) == "client_address_unknown"]
