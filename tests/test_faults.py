"""Database faults (SPEC §5): quick 503s during an outage, recovery without restart,
and nothing half-written when a rotation fails midway."""
from __future__ import annotations

import threading
import time

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from app.services.accounts import users
from app.services.signin import password_grant
from app.services.tenancy import tenants
from app.services.tokens import rotation
from tests.helpers import chain_violations
from tests.helpers import utcnow
from tests.parallel import run_together
from tests.plugins.database import make_app

CLIENTS = 4


def _chain_through_outage(base: str, token: str, seconds: float) -> dict:
    """Refresh for `seconds`, retrying the same token after 503 or a dropped connection."""
    outcome = {"ok": 0, "unavailable": [], "other": [], "token": token, "first_ok_after": []}
    deadline = time.monotonic() + seconds
    failing_since = None
    with requests.Session() as http:
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                response = http.post(f"{base}/token", timeout=15, data={
                    "grant_type": "refresh_token", "refresh_token": token})
                status = response.status_code
            except requests.RequestException as exc:
                status, response = type(exc).__name__, None
            elapsed = time.monotonic() - started
            if status == 200:
                token = response.json()["refresh_token"]
                outcome["ok"] += 1
                if failing_since is not None:
                    outcome["first_ok_after"].append(time.monotonic())
                    failing_since = None
            elif status == 503:
                assert response.headers["Retry-After"]
                outcome["unavailable"].append((time.monotonic(), elapsed))
                failing_since = failing_since or started
                time.sleep(0.2)
            else:
                outcome["other"].append((status, response.text if response is not None else ""))
                break
    outcome["token"] = token
    return outcome


@pytest.fixture
def outage_tenant(app):
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("outage", "Outage"), utcnow())
        for i in range(CLIENTS):
            users.create_user("outage", f"u{i}", "hunter2hunter2", utcnow())
        db.session.remove()
    return "outage"


def test_outage_gives_quick_503_and_every_chain_continues(app, live_server, database,
                                                          outage_tenant, capsys):
    base = f"{live_server}/v1/tenants/{outage_tenant}"
    starts = [requests.post(f"{base}/token", timeout=30, data={
        "grant_type": "password", "username": f"u{i}", "password": "hunter2hunter2"}).json()
        for i in range(CLIENTS)]
    marks = {}

    def outage():
        time.sleep(2)
        marks["down"] = time.monotonic()
        database.stop()
        time.sleep(4)
        marks["restarting"] = time.monotonic()
        database.start()
        marks["up"] = time.monotonic()

    breaker = threading.Thread(target=outage)
    breaker.start()
    results = run_together(_chain_through_outage,
                           [(base, s["refresh_token"], 12) for s in starts])
    breaker.join()
    for result in results:
        assert result["other"] == [], result["other"]
        assert result["ok"] > 0
    failures = [f for r in results for f in r["unavailable"]]
    assert failures, "the outage produced no 503 at all"
    slowest = max(elapsed for _, elapsed in failures)
    assert slowest < 5, f"a request took {slowest:.1f}s to fail"
    recoveries = [t - marks["restarting"] for r in results for t in r["first_ok_after"]]
    assert recoveries and max(recoveries) < 5 + (marks["up"] - marks["restarting"])
    # Every client continues its own chain: its newest token still refreshes, nothing forked.
    for start, result in zip(starts, results):
        response = requests.post(f"{base}/token", timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": result["token"]})
        assert response.status_code == 200, response.text
        assert response.json()["session_id"] == start["session_id"]
    with app.app_context():
        assert chain_violations() == {"tokens_with_two_successors": 0,
                                      "sessions_with_two_current": 0}
        db.session.remove()
    with capsys.disabled():
        print(f"\n[outage] {len(failures)} x 503, slowest {slowest * 1000:.0f} ms; every client "
              f"refreshing again {max(recoveries) * 1000:.0f} ms after the restart began "
              f"(the restart took {(marks['up'] - marks['restarting']) * 1000:.0f} ms)")


def test_refused_connection_is_503(database_url, tenant, user):
    """A server that refuses connections (wrong port) answers 503 quickly, not 500."""
    url = sa.engine.make_url(database_url)
    broken = url.set(host="127.0.0.1", port=1, query={})
    app = make_app(broken.render_as_string(hide_password=False))
    started = time.monotonic()
    response = app.test_client().post("/v1/tenants/acme/token", data={
        "grant_type": "refresh_token", "refresh_token": "x" * 43})
    assert response.status_code == 503
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert response.headers["Retry-After"] == "1"
    assert time.monotonic() - started < 5


def test_exception_inside_rotation_rolls_back_everything(ctx, user, monkeypatch):
    first = password_grant.login("acme", "alice", "correct horse", now=utcnow())

    def explode(*args, **kwargs):
        raise RuntimeError("injected failure after the rotation was written")

    monkeypatch.setattr(rotation, "_grant", explode)
    with pytest.raises(RuntimeError):
        rotation.rotate("acme", first.refresh_token, now=utcnow())
    db.session.rollback()
    rows = db.session.execute(sa.text(
        "SELECT count(*), count(rotated_at) FROM refresh_tokens")).one()
    db.session.rollback()
    assert tuple(rows) == (1, 0)  # no successor, the token not marked rotated
    monkeypatch.undo()
    assert rotation.rotate("acme", first.refresh_token,
                      now=utcnow()).session_id == first.session_id


def test_request_log_line_and_request_id(client, tenant, caplog):
    caplog.set_level("INFO", logger="app")
    response = client.get("/v1/tenants/acme/jwks.json", headers={"X-Request-ID": "trace-42"})
    assert response.headers["X-Request-ID"] == "trace-42"
    record = next(r for r in caplog.records if getattr(r, "event", None) == "request")
    assert (record.route, record.tenant, record.status) == ("/v1/tenants/<tenant>/jwks.json",
                                                            "acme", 200)
    assert record.duration_ms >= 0
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id!"})
    assert generated.headers["X-Request-ID"] != "bad id!"
    assert len(generated.headers["X-Request-ID"]) == 32


def test_replay_is_a_security_event(tokens, caplog):
    caplog.set_level("INFO", logger="app")
    first = tokens.login().get_json()
    tokens.refresh(first["refresh_token"])
    with pytest.MonkeyPatch.context() as mp:
        from datetime import timedelta

        from app.oauth import routes

        mp.setattr(routes, "utcnow", lambda: utcnow() + timedelta(seconds=60))
        assert tokens.refresh(first["refresh_token"]).status_code == 400
    events = [r for r in caplog.records if getattr(r, "event", None) == "refresh_token_replay"]
    assert len(events) == 1 and str(events[0].session_id) == first["session_id"]


def test_an_outage_cuts_only_this_runs_connections(database):
    """On a PostgreSQL server (TEST_DATABASE_URL) the simulated outage terminates this test
    run's own connections, not another client's of the same database. (On a database of its
    own, so that the run's gunicorn keeps its connections.)"""
    import uuid

    from tests.plugins.database import ServerDatabase

    if not isinstance(database, ServerDatabase):
        pytest.skip("the embedded database is this run's alone: its outage stops the server")
    name = f"baton_outage_{uuid.uuid4().hex[:8]}"
    with database.admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.engine.make_url(database.url).set(database=name)
    scratch = ServerDatabase(url.render_as_string(hide_password=False))
    ours = sa.create_engine(url, poolclass=sa.pool.NullPool)  # the run's PGAPPNAME
    theirs = sa.create_engine(url, poolclass=sa.pool.NullPool,
                              connect_args={"application_name": "someone-else"})
    try:
        with ours.connect() as mine, theirs.connect() as bystander:
            scratch.stop()
            scratch.start()
            assert bystander.execute(sa.text("SELECT 1")).scalar_one() == 1
            with pytest.raises(sa.exc.OperationalError):
                mine.execute(sa.text("SELECT 1"))
    finally:
        ours.dispose()
        theirs.dispose()
        scratch.admin.dispose()
        with database.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
