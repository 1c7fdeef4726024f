"""Every guarantee of SPEC §5 through a real PgBouncer in transaction pooling mode (§12).

PgBouncer is configured the way most deployments are (`ignore_startup_parameters =
extra_float_digits,options`): startup options are dropped, so only timeouts set inside
each transaction can hold. gunicorn talks to PgBouncer; the test's own checks (and the
lock holder) talk to PostgreSQL directly.
"""
from __future__ import annotations

import time

import pytest
import requests
import sqlalchemy as sa
from flask_migrate import upgrade

from app.extensions import db
from tests import test_rotation_concurrency as races
from tests.plugins.database import make_app
from tests.topology import Cluster
from tests.topology import PgBouncer
from tests.topology import Workspace
from tests.topology import conformance
from tests.topology import gunicorn
from tests.topology import pg_bindir

pytestmark = [pytest.mark.slow, pytest.mark.live]
DB = "baton"
CLUSTERS: dict[str, Cluster] = {}  # base URL -> the cluster behind it


@pytest.fixture(scope="module")
def bounced(tmp_path_factory):
    """(direct app, PgBouncer URL, gunicorn base URL behind PgBouncer)."""
    bindir = pg_bindir()
    ws = Workspace()
    cluster = Cluster(ws, "pg", bindir)
    bouncer = None
    try:
        bouncer = PgBouncer(ws, cluster, DB)
        cluster.init()
        cluster.start()
        cluster.execute(f"CREATE DATABASE {DB}")
        app = make_app(cluster.url(DB), DB_PREPARED_STATEMENTS=False)
        with app.app_context():
            upgrade()
            db.session.remove()
        bouncer.start()
        # Transaction pooling: SQL-level prepared statements cannot follow a client from one
        # server connection to the next, so the setting that turns them off is on (SPEC §12).
        with gunicorn(bouncer.url(DB), tmp_path_factory.mktemp("bounced"),
                      env={"BATON_DB_PREPARED_STATEMENTS": "0"}) as base:
            CLUSTERS[base] = cluster
            yield app, bouncer.url(DB), base
        with app.app_context():
            db.engine.dispose()
    finally:
        if bouncer:
            bouncer.stop()
        cluster.stop_quietly()
        ws.cleanup()


def test_timeouts_hold_inside_transactions_through_pgbouncer(bounced):
    _, bouncer_url, _ = bounced
    app = make_app(bouncer_url, DB_PREPARED_STATEMENTS=False)
    with app.app_context():
        for _ in range(3):
            with db.session.begin():
                row = db.session.execute(sa.text(
                    "SELECT current_setting('lock_timeout'),"
                    " current_setting('statement_timeout')")).one()
            assert tuple(row) == ("2s", "10s")
        db.session.remove()
        db.engine.dispose()


def test_parallel_duplicates_through_pgbouncer(bounced):
    app, _, base = bounced
    races.test_parallel_duplicates_all_get_the_same_pair(app, base)


def test_strict_mode_through_pgbouncer(bounced):
    app, _, base = bounced
    races.test_strict_mode_exactly_one_wins_and_session_dies(app, base)


def test_replay_racing_refresh_through_pgbouncer(bounced):
    app, _, base = bounced
    races.test_replay_racing_refresh_always_kills_the_session(app, base)


def test_lock_timeout_503_through_pgbouncer(bounced):
    """The case startup options lose: without SET LOCAL this waits until the lock is gone."""
    app, _, base = bounced
    races.test_lock_held_too_long_gives_503_and_service_recovers(app, base)


def test_conformance_through_pgbouncer(bounced):
    app, _, base = bounced
    races.make_tenant(app, "conform", reuse_interval=10)
    result = conformance(base, "conform", "user0", "hunter2hunter2", "--processes", "16")
    print(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr


def test_read_only_server_answers_503_and_nothing_is_written(bounced):
    """What a primary being demoted looks like to a pooled connection: 503, never a 500."""
    app, _, base = bounced
    cluster = CLUSTERS[base]
    races.make_tenant(app, "demoted", reuse_interval=10)
    first = races.login(base, "demoted")
    cluster.execute("ALTER SYSTEM SET default_transaction_read_only = on")
    cluster.execute("SELECT pg_reload_conf()")
    try:
        time.sleep(0.5)  # every backend applies the reload at its next command
        for _ in range(4):  # more than one pooled connection, on more than one worker
            response = requests.post(f"{base}/v1/tenants/demoted/token", data={
                "grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
                timeout=30)
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "temporarily_unavailable"
    finally:
        cluster.execute("ALTER SYSTEM RESET default_transaction_read_only")
        cluster.execute("SELECT pg_reload_conf()")
    time.sleep(0.5)
    status, _ = races.refresh_once(base, "demoted", first["refresh_token"])
    assert status == 200  # the same token: the refused attempts wrote nothing
    assert races.violations(app) == races.NO_VIOLATIONS
