"""A primary failover under load loses no acknowledged rotation and forks nothing (SPEC §12).

Real processes: a primary and a synchronous streaming standby (initdb, pg_basebackup,
synchronous_standby_names), gunicorn on a multi-host DATABASE_URL with
target_session_attrs=read-write, client processes chaining refreshes. The primary is
stopped with `immediate` (a crash: no shutdown checkpoint, connections cut) and the
standby promoted; the clients simply retry their current token on 503.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests
import sqlalchemy as sa
from flask_migrate import upgrade

from app.crypto import token_digest
from app.extensions import db
from tests import test_rotation_concurrency as races
from tests.helpers import chain_violations
from tests.helpers import http_refresh
from tests.parallel import CONTEXT
from tests.parallel import run_together
from tests.plugins.database import make_app
from tests.topology import Cluster
from tests.topology import Workspace
from tests.topology import conformance
from tests.topology import gunicorn
from tests.topology import pg_bindir

pytestmark = [pytest.mark.slow, pytest.mark.live]
DB = "baton"
CLIENTS = 6
TENANT = "failover"


def wait_for_sync_standby(primary: Cluster, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if primary.execute("SELECT sync_state FROM pg_stat_replication") == [("sync",)]:
            return
        time.sleep(0.2)
    raise RuntimeError("the standby never became synchronous")


@pytest.fixture
def replicated(tmp_path_factory):
    """(primary, standby, multi-host URL), the standby synchronous."""
    bindir = pg_bindir()
    ws = Workspace()
    primary, standby = Cluster(ws, "primary", bindir), Cluster(ws, "standby", bindir)
    try:
        primary.init()
        primary.start()
        primary.execute(f"CREATE DATABASE {DB}")
        standby.base_backup_of(primary)
        standby.start()
        # Only now: with no standby attached, every commit would wait for one. The standby's
        # copy of the configuration does not have it, so once promoted it commits alone.
        primary.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        primary.execute("SELECT pg_reload_conf()")
        wait_for_sync_standby(primary)
        url = (f"postgresql+psycopg2://postgres@/{DB}?host=127.0.0.1:{primary.port}"
               f"&host=127.0.0.1:{standby.port}&target_session_attrs=read-write")
        yield primary, standby, url
    finally:
        primary.stop_quietly()
        standby.stop_quietly()
        ws.cleanup()


def chain_until(base: str, token: str, stop) -> dict:
    """Refresh in a row with the newest token; on 503 or a cut connection retry the same one."""
    events: list[tuple[float, int, float]] = []  # (answered, status, sent); 0 = no answer
    received: list[str] = []
    with requests.Session() as http:
        while not stop.is_set():
            sent = time.time()
            try:
                response = http_refresh(base, TENANT, token, http)
                status = response.status_code
            except (requests.ConnectionError, requests.Timeout):
                status = 0
            events.append((time.time(), status, sent))
            if status == 200:
                token = response.json()["refresh_token"]
                received.append(token)
            elif status in (0, 503):
                time.sleep(0.05)
            else:
                break  # a 400 here would be an honest retry punished as a replay
    return {"events": events, "received": received, "last": token}


def test_failover_loses_no_acknowledged_rotation(replicated, tmp_path_factory, capsys):
    primary, standby, url = replicated
    app = make_app(url)
    with app.app_context():
        upgrade()
        db.session.remove()
    races.make_tenant(app, TENANT, reuse_interval=10, n_users=CLIENTS)
    with gunicorn(url, tmp_path_factory.mktemp("failover")) as base:
        starts = [races.login(base, TENANT, f"user{i}")["refresh_token"] for i in range(CLIENTS)]
        stop = CONTEXT.Event()
        outcome: dict = {}
        clients = threading.Thread(target=lambda: outcome.update(results=run_together(
            chain_until, [(base, token, stop) for token in starts], timeout=180)))
        clients.start()
        try:
            time.sleep(2)  # chaining against the primary
            killed = time.time()
            primary.stop("immediate")
            down = time.time()  # from here on, only the promoted standby can answer a 200
            standby.promote()
            promoted = time.time()
            time.sleep(4)  # chaining against the new primary
        finally:
            stop.set()
            clients.join(200)
        results = outcome["results"]
        events = sorted(e for r in results for e in r["events"])
        statuses = [status for _, status, _ in events]
        unavailable = [t for t, status, _ in events if status in (0, 503)]

        # Every client saw the gap, and then refreshed again by itself.
        assert set(statuses) <= {200, 503, 0}, sorted(set(statuses))
        assert unavailable, "no client noticed the failover"
        for r in results:
            assert any(t > promoted and s == 200 for t, s, _ in r["events"]), r["events"][-5:]
        # The gap: from the first 503 to the first 200 of a request sent once the primary
        # was down (one sent earlier may have been served by the old primary).
        first_503 = min(unavailable)
        first_back = min(t for t, s, sent in events if s == 200 and sent > down)
        last_back = max(min(t for t, s, sent in r["events"] if s == 200 and sent > down)
                        for r in results)

        # Every token any client received in a 200 is known to the new primary (the digests
        # are stored), and each client's newest token still refreshes.
        received = [token for r in results for token in r["received"]]
        with app.app_context():
            known = set(db.session.scalars(sa.text("SELECT digest FROM refresh_tokens")).all())
            revoked = db.session.execute(sa.text(
                "SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL")).scalar_one()
            db.session.rollback()
            violations = chain_violations()
            db.session.remove()
            db.engine.dispose()
        lost = [t for t in received if bytes(token_digest(t)) not in {bytes(k) for k in known}]
        assert lost == []
        assert revoked == 0  # no honest retry was taken for a replay
        assert violations == races.NO_VIOLATIONS
        for r in results:
            assert races.refresh_once(base, TENANT, r["last"])[0] == 200

        # The conformance check agrees about the promoted primary.
        check = conformance(base, TENANT, "user0", "hunter2hunter2", "--processes", "8")
        assert check.returncode == 0, check.stdout + check.stderr
    with capsys.disabled():
        print(f"\n[failover] gap {(first_back - first_503) * 1000:.0f} ms from the first 503 to "
              f"the first 200 (every client back after {(last_back - first_503) * 1000:.0f} ms;"
              f" the immediate stop took {(down - killed) * 1000:.0f} ms, the promotion "
              f"{(promoted - down) * 1000:.0f} ms); "
              f"{statuses.count(200)} x 200, {statuses.count(503)} x 503, "
              f"{statuses.count(0)} without answer; {len(received)} acknowledged rotations, "
              f"0 lost, 0 forked, 0 sessions revoked")
