"""Failover under an HA manager, pg_auto_failover (SPEC §12): nothing acknowledged is lost.

Real processes (tests/autofailover.py): a monitor, a primary and a secondary, each a
`pg_autoctl run`, with the synchronous replication pg_auto_failover configures itself;
Baton's schema on the formation, gunicorn (4 workers) on the multi-host DATABASE_URL with
target_session_attrs=read-write, and client processes chaining refreshes
(tests/failover_race.py) while the manager fails the primary over: once a switchover
(`pg_autoctl perform failover`), once the primary's node killed (its keeper and its
postgres, SIGKILL) and the monitor promoting the secondary; the killed node then comes
back and rejoins as the secondary. And once only the primary's postgres killed, which
its keeper restarts in place (no failover).
"""
from __future__ import annotations

import time

import pytest
from flask_migrate import upgrade

from app.extensions import db
from tests import test_rotation_concurrency as races
from tests.autofailover import MONITOR_SETTINGS
from tests.autofailover import AutoFailover
from tests.failover_race import check_nothing_lost
from tests.failover_race import outage
from tests.failover_race import race
from tests.failover_race import wait_until
from tests.plugins.database import make_app
from tests.topology import Workspace
from tests.topology import gunicorn
from tests.topology import pg_bindir

pytestmark = [pytest.mark.slow, pytest.mark.live]
DB = "baton"
TENANT = "ha"
CLIENTS = 6
# Longer than the outage (about 10 s with the detection settings of MONITOR_SETTINGS): a
# refresh that committed just before the primary died is retried after it, and must be a
# duplicate, not a replay (docs/deployment.md).
REUSE_INTERVAL = 30


@pytest.fixture(scope="module")
def formation(tmp_path_factory):
    """(the formation, an app on it, gunicorn's base URL)."""
    ws = Workspace()
    ha = None
    try:
        ha = AutoFailover(ws, pg_bindir(), DB)
        ha.create_monitor()
        ha.add_node("node_a")
        ha.wait_for({"node_a": "single"})
        ha.add_node("node_b")
        ha.wait_for({"node_a": "primary", "node_b": "secondary"})
        app = make_app(ha.url())
        with app.app_context():
            upgrade()
            db.session.remove()
        races.make_tenant(app, TENANT, reuse_interval=REUSE_INTERVAL, n_users=4 * CLIENTS)
        with gunicorn(ha.url(), tmp_path_factory.mktemp("autofailover")) as base:
            yield ha, app, base
        with app.app_context():
            db.engine.dispose()
    finally:
        if ha:
            ha.stop()
        ws.cleanup()


def healthy(ha: AutoFailover) -> tuple[str, str]:
    """(primary, secondary) once the monitor has settled both and replication is synchronous."""
    primary = wait_until(lambda: _settled_primary(ha), 60, "a settled primary")
    secondary = next(name for name in ha.nodes if name != primary)
    ha.wait_for({primary: "primary", secondary: "secondary"})
    wait_until(ha.sync_standbys, 30, "a synchronous standby")
    return primary, secondary


def _settled_primary(ha: AutoFailover) -> str | None:
    try:
        return ha.primary()
    except StopIteration:
        return None


def report(name: str, figures: dict, acknowledged: int, extra: str, capsys) -> None:
    with capsys.disabled():
        print(f"\n[pg_auto_failover {name}] every client refreshing again "
              f"{figures['recovery_s']:.1f} s after the first 503 ({figures['clients_hit']} of "
              f"{CLIENTS} clients hit; {extra}); {figures['ok']} x 200, {figures['503']} x 503, "
              f"{figures['no_answer']} without answer, slowest answer "
              f"{figures['slowest_answer_s']:.1f} s; {acknowledged} acknowledged rotations, "
              f"0 lost, 0 forked, 0 sessions revoked")


def test_switchover_by_the_manager_loses_nothing(formation, capsys):
    ha, app, base = formation
    old, new = healthy(ha)
    starts = [races.login(base, TENANT, f"user{i}")["refresh_token"] for i in range(CLIENTS)]

    def switchover() -> float:
        began = time.monotonic()
        ha.perform_failover()  # returns once the monitor reports the new primary
        return time.monotonic() - began

    results, took = race(base, TENANT, starts, switchover)
    assert healthy(ha) == (new, old)
    acknowledged = check_nothing_lost(app, base, TENANT, results)
    report("switchover", outage(results), acknowledged,
           f"`pg_autoctl perform failover` took {took:.1f} s", capsys)


def test_primary_postgres_killed_its_keeper_restarts_it(formation, capsys):
    """Only postgres dies: its keeper restarts it (crash recovery in place). Usually the
    node stays primary; if the restart outlasts the monitor's patience (a loaded machine,
    with the short timeouts of MONITOR_SETTINGS) the monitor fails over instead. Either
    way every acknowledged rotation is there."""
    ha, app, base = formation
    primary, _ = healthy(ha)
    starts = [races.login(base, TENANT, f"user{i}")["refresh_token"]
              for i in range(2 * CLIENTS, 3 * CLIENTS)]

    def crash() -> float:
        killed = time.monotonic()
        ha.kill_postgres(primary)
        wait_until(lambda: ha.answers(primary), 60, "postgres to be restarted")
        return time.monotonic() - killed

    results, restarted_after = race(base, TENANT, starts, crash)
    stayed = healthy(ha)[0] == primary
    acknowledged = check_nothing_lost(app, base, TENANT, results)
    report("postgres killed", outage(results), acknowledged,
           f"postgres answering again {restarted_after:.1f} s after the kill, "
           + ("still the primary" if stayed else "but the monitor had failed over"), capsys)


def test_primary_killed_the_monitor_promotes_and_nothing_is_lost(formation, capsys):
    ha, app, base = formation
    primary, secondary = healthy(ha)
    starts = [races.login(base, TENANT, f"user{i}")["refresh_token"]
              for i in range(3 * CLIENTS, 4 * CLIENTS)]

    def crash() -> float:
        killed = time.monotonic()
        ha.kill(primary)
        ha.wait_for({secondary: "wait_primary"}, timeout=120)  # writable, alone
        return time.monotonic() - killed

    results, promoted_after = race(base, TENANT, starts, crash)
    figures = outage(results)
    assert figures["clients_hit"] == CLIENTS  # every client saw the outage, and came back
    acknowledged = check_nothing_lost(app, base, TENANT, results)

    # The killed node comes back as the new primary's synchronous standby (rewound if it
    # had written anything the new primary never got) and holds exactly what it holds.
    ha.restart(primary)
    assert healthy(ha) == (secondary, primary)
    query = "SELECT encode(digest, 'hex') FROM refresh_tokens ORDER BY 1"
    wait_until(lambda: ha.execute(ha.nodes[primary].port, DB, query)
               == ha.execute(ha.nodes[secondary].port, DB, query), 30,
               "the rejoined node to hold what the primary holds")
    detection = MONITOR_SETTINGS["pgautofailover.node_considered_unhealthy_timeout"] / 1000
    demote = MONITOR_SETTINGS["pgautofailover.primary_demote_timeout"] / 1000
    report("primary killed", figures, acknowledged,
           f"the monitor promoted the secondary {promoted_after:.1f} s after the kill, with "
           f"{detection:.0f} s unhealthy and {demote:.0f} s demote timeouts", capsys)
