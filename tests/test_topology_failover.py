"""A primary failover under load loses no acknowledged rotation and forks nothing (SPEC §12).

Real processes: a primary and a synchronous streaming standby (initdb, pg_basebackup,
synchronous_standby_names), gunicorn on a multi-host DATABASE_URL with
target_session_attrs=read-write, client processes chaining refreshes (tests/failover_race.py).
The primary is stopped with `immediate` (a crash: no shutdown checkpoint, connections cut)
and the standby promoted at once; the clients simply retry their current token on 503.
tests/test_topology_autofailover.py does the same under pg_auto_failover.
"""
from __future__ import annotations

import time

import pytest
from flask_migrate import upgrade

from app.extensions import db
from tests import test_rotation_concurrency as races
from tests.failover_race import check_nothing_lost
from tests.failover_race import race
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


def test_failover_loses_no_acknowledged_rotation(replicated, tmp_path_factory, capsys):
    primary, standby, url = replicated
    app = make_app(url)
    with app.app_context():
        upgrade()
        db.session.remove()
    races.make_tenant(app, TENANT, reuse_interval=10, n_users=CLIENTS)
    with gunicorn(url, tmp_path_factory.mktemp("failover")) as base:
        starts = [races.login(base, TENANT, f"user{i}")["refresh_token"] for i in range(CLIENTS)]

        def crash_and_promote() -> tuple[float, float, float]:
            killed = time.time()
            primary.stop("immediate")
            down = time.time()  # from here on, only the promoted standby can answer a 200
            standby.promote()
            return killed, down, time.time()

        results, (killed, down, promoted) = race(base, TENANT, starts, crash_and_promote)
        events = sorted(e for r in results for e in r["events"])
        statuses = [status for _, status, _ in events]
        unavailable = [t for t, status, _ in events if status in (0, 503)]

        # Every client saw the gap, and then refreshed again by itself.
        assert unavailable, "no client noticed the failover"
        for r in results:
            assert any(t > promoted and s == 200 for t, s, _ in r["events"]), r["events"][-5:]
        # The gap: from the first 503 to the first 200 of a request sent once the primary
        # was down (one sent earlier may have been served by the old primary).
        first_503 = min(unavailable)
        first_back = min(t for t, s, sent in events if s == 200 and sent > down)
        last_back = max(min(t for t, s, sent in r["events"] if s == 200 and sent > down)
                        for r in results)

        # Every token any client received in a 200 is in the new primary, each the
        # successor of the one before; no fork, no session revoked; every chain goes on.
        acknowledged = check_nothing_lost(app, base, TENANT, results)

        # The conformance check agrees about the promoted primary.
        check = conformance(base, TENANT, "user0", "hunter2hunter2", "--processes", "8")
        assert check.returncode == 0, check.stdout + check.stderr
    with capsys.disabled():
        print(f"\n[failover] gap {(first_back - first_503) * 1000:.0f} ms from the first 503 to "
              f"the first 200 (every client back after {(last_back - first_503) * 1000:.0f} ms;"
              f" the immediate stop took {(down - killed) * 1000:.0f} ms, the promotion "
              f"{(promoted - down) * 1000:.0f} ms); "
              f"{statuses.count(200)} x 200, {statuses.count(503)} x 503, "
              f"{statuses.count(0)} without answer; {acknowledged} acknowledged rotations, "
              f"0 lost, 0 forked, 0 sessions revoked")
