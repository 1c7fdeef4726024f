"""Rotation under real concurrency: gunicorn with 4 workers, parallel client processes.

Every scenario ends by asking the database itself whether any chain forked.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from tests import factories
from tests.helpers import chain_violations
from tests.helpers import http_login as login
from tests.helpers import refresh_chain
from tests.helpers import refresh_once
from tests.helpers import utcnow
from tests.parallel import run_together

NO_VIOLATIONS = {"tokens_with_two_successors": 0, "sessions_with_two_current": 0}


PASSWORD = "hunter2hunter2"  # the password of every user make_tenant creates


def make_tenant(app, slug: str, reuse_interval: int, n_users: int = 1) -> None:
    """A tenant with users user0..user<n-1>, password hunter2hunter2 (http_login's default)."""
    with app.app_context():
        factories.make_tenant(slug, slug, reuse_interval=reuse_interval)
        for i in range(n_users):
            factories.make_user(slug, f"user{i}", "hunter2hunter2")


def violations(app) -> dict:
    with app.app_context():
        result = chain_violations()
        db.session.remove()
    return result


def test_parallel_duplicates_all_get_the_same_pair(app, live_server):
    make_tenant(app, "tabs", reuse_interval=10)
    first = login(live_server, "tabs")
    results = run_together(refresh_once, [(live_server, "tabs", first["refresh_token"])] * 32)
    assert [status for status, _ in results] == [200] * 32, results
    assert len({body["refresh_token"] for _, body in results}) == 1
    assert len({body["access_token"] for _, body in results}) == 1
    successor = results[0][1]["refresh_token"]
    status, _ = refresh_once(live_server, "tabs", successor)
    assert status == 200
    assert violations(app) == NO_VIOLATIONS


def test_strict_mode_exactly_one_wins_and_session_dies(app, live_server):
    make_tenant(app, "strict", reuse_interval=0)
    first = login(live_server, "strict")
    results = run_together(refresh_once, [(live_server, "strict", first["refresh_token"])] * 32)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * 31, statuses
    assert {body["error"] for status, body in results if status == 400} == {"invalid_grant"}
    winner = next(body for status, body in results if status == 200)
    for token in (first["refresh_token"], winner["refresh_token"]):
        assert refresh_once(live_server, "strict", token)[0] == 400
    assert violations(app) == NO_VIOLATIONS


def test_replay_racing_refresh_always_kills_the_session(app, live_server):
    make_tenant(app, "race", reuse_interval=0)
    for _ in range(25):
        stolen = login(live_server, "race")["refresh_token"]
        status, body = refresh_once(live_server, "race", stolen)
        assert status == 200
        legit = body["refresh_token"]
        results = run_together(refresh_once, [(live_server, "race", stolen),
                                              (live_server, "race", legit)])
        assert results[0][0] == 400  # the replay never succeeds
        leftovers = [legit] + [b["refresh_token"] for s, b in results if s == 200]
        for token in leftovers:
            assert refresh_once(live_server, "race", token)[0] == 400
    assert violations(app) == NO_VIOLATIONS


def test_independent_sessions_chain_in_parallel(app, live_server):
    make_tenant(app, "many", reuse_interval=10, n_users=16)
    starts = [login(live_server, "many", f"user{i}")["refresh_token"] for i in range(16)]
    results = run_together(refresh_chain, [(live_server, "many", t, 20) for t in starts])
    assert results == [[200] * 20] * 16
    assert violations(app) == NO_VIOLATIONS


def test_lock_held_too_long_gives_503_and_service_recovers(app, live_server):
    make_tenant(app, "locked", reuse_interval=10)
    first = login(live_server, "locked")
    held, release = threading.Event(), threading.Event()

    def hold_session_lock():
        with app.app_context():
            with db.engine.connect() as conn, conn.begin():
                conn.execute(sa.text("SELECT 1 FROM sessions WHERE id = :id FOR UPDATE"),
                             {"id": first["session_id"]})
                held.set()
                release.wait(30)

    holder = threading.Thread(target=hold_session_lock)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        response = requests.post(f"{live_server}/v1/tenants/locked/token", data={
            "grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, timeout=30)
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.json()["error"] == "temporarily_unavailable"
        assert int(response.headers["Retry-After"]) >= 1
        assert elapsed < 10  # bounded by lock_timeout (2 s), never a hang
        assert requests.get(f"{live_server}/healthz", timeout=5).status_code == 200
    finally:
        release.set()
        holder.join()
    # Nothing was half-written: the same token still rotates once the lock is gone.
    status, _ = refresh_once(live_server, "locked", first["refresh_token"])
    assert status == 200
    assert violations(app) == NO_VIOLATIONS


def _threaded_refresh(app, tenant, token, barrier, out, index):
    from app.services.tokens import rotation

    with app.app_context():
        barrier.wait()
        try:
            out[index] = rotation.rotate(tenant, token, now=utcnow()).refresh_token
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            out[index] = type(exc).__name__
        db.session.remove()


@pytest.mark.parametrize("reuse_interval, expect_same", [(10, True), (0, False)])
def test_in_process_threads_never_fork(app, reuse_interval, expect_same):
    """The shallower depth: threads with their own app context and session."""
    make_tenant(app, "threads", reuse_interval=reuse_interval)
    from app.services.signin import password_grant

    with app.app_context():
        first = password_grant.login("threads", "user0", "hunter2hunter2", now=utcnow())
        db.session.remove()
    n = 8
    barrier, out = threading.Barrier(n), [None] * n
    threads = [threading.Thread(target=_threaded_refresh,
                                args=(app, "threads", first.refresh_token, barrier, out, i))
               for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    tokens_out = [o for o in out if o != "TokenRejected"]
    if expect_same:
        assert len(tokens_out) == n and len(set(tokens_out)) == 1, out
    else:
        assert len(tokens_out) == 1, out
    assert violations(app) == NO_VIOLATIONS


def test_key_rotation_does_not_hold_up_logins_or_refreshes(app, live_server, monkeypatch):
    """`keys rotate` holds its tenant lock while refreshes and logins of that tenant run.

    Each of them inserts rows referencing the tenant (FOR KEY SHARE on its row); the
    rotation's lock must not conflict with that, or they wait out the rotation (or the
    lock timeout, 503).
    """
    from app.services.tenancy import signing_keys

    make_tenant(app, "rotating", reuse_interval=10)
    token = login(live_server, "rotating")["refresh_token"]
    locked, release = threading.Event(), threading.Event()
    real_add = signing_keys.add_signing_key

    def slow_add(tenant_id, now):
        kid = real_add(tenant_id, now)
        locked.set()  # the tenant row is locked now, until the rotation commits
        release.wait(10)
        return kid

    monkeypatch.setattr(signing_keys, "add_signing_key", slow_add)
    rotated: list[str] = []

    def rotate_key():
        with app.app_context():
            rotated.append(signing_keys.rotate_key("rotating", utcnow()))
            db.session.remove()

    rotation = threading.Thread(target=rotate_key)
    rotation.start()
    try:
        assert locked.wait(10)
        timings = []
        for _ in range(3):
            started = time.monotonic()
            status, body = refresh_once(live_server, "rotating", token)
            timings.append(time.monotonic() - started)
            assert status == 200, body
            token = body["refresh_token"]
        started = time.monotonic()
        login(live_server, "rotating")
        timings.append(time.monotonic() - started)
        assert rotation.is_alive()  # all of it happened while the rotation held its lock
        assert max(timings) < 1.0, timings
    finally:
        release.set()
        rotation.join(15)
    assert len(rotated) == 1
