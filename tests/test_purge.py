"""flask tokens purge (SPEC §7): exactly what it should remove, and never disturbing refreshes."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from app.services.accounts import users
from app.services.maintenance.purge import MAX_REST_S
from app.services.maintenance.purge import _Rest
from app.services.maintenance.purge import purge
from app.services.tenancy import tenants
from tests import factories
from tests.helpers import chain_violations
from tests.helpers import login
from tests.helpers import rotate
from tests.helpers import utcnow
from tests.parallel import run_together

DAY = timedelta(days=1)


def sql(statement: str, **params):
    with db.session.begin():
        return db.session.execute(sa.text(statement), params)




def exists(table: str, **where) -> int:
    clause = " AND ".join(f"{k} = :{k}" for k in where)
    count = db.session.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {clause}"),
                               where).scalar_one()
    db.session.rollback()
    return count


@pytest.fixture
def cases(ctx, user):
    """One session per case of the table below; returns {case: (session_id, tokens)}."""
    now = utcnow()
    tenants.create_tenant(tenants.TenantSettings("globex", "Globex"), now)
    users.create_user("globex", "alice", "correct horse", now)
    made = {}

    def make(name, tenant="acme", rotations=0):
        issued = [login(tenant)]
        for _ in range(rotations):
            issued.append(rotate(issued[-1].refresh_token, tenant))
        made[name] = (issued[0].session_id, [i.refresh_token for i in issued])
        return issued[0].session_id

    make("live")
    sql("UPDATE sessions SET revoked_at = :t WHERE id = :id", t=now - 8 * DAY,
        id=make("revoked_long_ago", rotations=1))
    sql("UPDATE sessions SET revoked_at = :t WHERE id = :id", t=now - DAY,
        id=make("revoked_recently"))
    sid = make("expired_long_ago")
    sql("UPDATE sessions SET expires_at = :t WHERE id = :id", t=now - 8 * DAY, id=sid)
    sql("UPDATE refresh_tokens SET expires_at = :t WHERE session_id = :id", t=now - 8 * DAY, id=sid)
    sid = make("rotated_expired", rotations=2)
    sql("UPDATE refresh_tokens SET expires_at = :t"
        " WHERE session_id = :id AND rotated_at IS NOT NULL", t=now - 8 * DAY, id=sid)
    make("rotated_fresh", rotations=1)
    sql("UPDATE refresh_tokens SET expires_at = :t WHERE session_id = :id", t=now - 8 * DAY,
        id=make("current_idle_expired"))
    sql("UPDATE sessions SET revoked_at = :t WHERE id = :id", t=now - 8 * DAY,
        id=make("other_tenant", tenant="globex"))
    return made


# case → (session kept?, tokens kept) for `--retention 7d --tenant acme`
EXPECTED = {
    "live": (True, 1),
    "revoked_long_ago": (False, 0),
    "revoked_recently": (True, 1),
    "expired_long_ago": (False, 0),
    "rotated_expired": (True, 1),
    "rotated_fresh": (True, 2),
    "current_idle_expired": (False, 0),
    "other_tenant": (True, 1),
}


def test_purge_removes_exactly_what_it_should(cases):
    dry = purge(utcnow(), 7 * DAY, 2, tenant_slug="acme", dry_run=True)
    before = {name: exists("refresh_tokens", session_id=sid) for name, (sid, _) in cases.items()}
    report = purge(utcnow(), 7 * DAY, 2, tenant_slug="acme")
    for name, (sid, _) in cases.items():
        kept = (bool(exists("sessions", id=sid)), exists("refresh_tokens", session_id=sid))
        assert kept == EXPECTED[name], name
    removed_tokens = sum(before[n] - EXPECTED[n][1] for n in cases)
    assert (report.sessions, report.tokens) == (3, removed_tokens)
    assert (dry.sessions, dry.tokens) == (report.sessions, report.tokens)
    # The live session whose old links were purged still refreshes.
    assert rotate(cases["rotated_expired"][1][-1]).session_id == cases["rotated_expired"][0]
    assert purge(utcnow(), 7 * DAY, 2, tenant_slug="acme").tokens == 0


def test_purge_rests_between_batches(cases):
    """Busy for at most `duty_cycle` of its time, so live refreshes keep their CPU."""
    report = purge(utcnow(), 7 * DAY, 1, tenant_slug="acme", duty_cycle=0.25)
    assert report.batches > 3 and report.busy_s > 0
    assert report.elapsed_s >= 4 * report.busy_s * 0.99  # it rested 3x as long as it worked


@pytest.mark.parametrize("duty_cycle", [0, 0.001, 1.5])
def test_purge_refuses_a_duty_cycle_outside_1_to_100_percent(cases, duty_cycle):
    with pytest.raises(ValueError, match="duty_cycle"):
        purge(utcnow(), 7 * DAY, 1, duty_cycle=duty_cycle)


def test_one_rest_is_bounded():
    """A batch that stalled (up to the statement timeout) must not put purge to sleep."""
    assert _Rest(0.25).rest_for(1.0) == 3.0
    assert _Rest(0.01).rest_for(60.0) == MAX_REST_S
    assert _Rest(1.0).rest_for(60.0) == 0


def test_dry_run_removes_nothing(cases):
    def count():
        counts = db.session.execute(sa.text(
            "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM refresh_tokens)")).one()
        db.session.rollback()
        return tuple(counts)

    before = count()
    report = purge(utcnow(), 7 * DAY, 1000, dry_run=True)
    assert report.sessions == 4 and report.tokens > 0
    assert count() == before


def test_cli_purge(runner, cases):
    result = runner.invoke(args=["tokens", "purge", "--retention", "7d", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Would remove 4 session(s)")
    result = runner.invoke(args=["tokens", "purge", "--retention", "168h", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Removed 4 session(s)")
    assert "longest" in result.output and "busy" in result.output


@pytest.mark.parametrize("args, fragment", [
    (["--retention", "7x"], "duration"),
    (["--retention", "7"], "no unit: write 7s, 7m, 7h or 7d"),  # 7 seconds was a trap
    (["--retention", "-1d"], "duration"),
    (["--retention", ""], "duration"),
    (["--batch-size", "0"], "--batch-size"),
    (["--duty-cycle", "0"], "--duty-cycle"),
    (["--duty-cycle", "101"], "--duty-cycle"),
    (["--tenant", "nope"], "unknown tenant"),
])
def test_cli_purge_bad_options(runner, tenant, args, fragment):
    result = runner.invoke(args=["tokens", "purge", *args])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and fragment in lines[0], result.output


def _chain(base: str, token: str, steps: int) -> list[int]:
    statuses = []
    with requests.Session() as http:
        for _ in range(steps):
            response = http.post(f"{base}/token", timeout=30, data={
                "grant_type": "refresh_token", "refresh_token": token})
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
            token = response.json()["refresh_token"]
    return statuses


def seed_purgeable(sessions: int, tokens_per_session: int, tenant: str = "acme",
                   username: str = "alice") -> int:
    """Revoked-long-ago sessions of the user full of rotated tokens, written in bulk by SQL;
    returns the tenant's id."""
    tenant_id = factories.tenant_id(tenant)
    user_id = users.get_user(tenant, username).id
    sql("""
        INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at, expires_at,
                              revoked_at, auth_time)
        SELECT md5('s' || g)::uuid, :tid, :uid, now() - interval '40 days',
               now() - interval '40 days', now() - interval '10 days', now() - interval '30 days',
               now() - interval '40 days'
        FROM generate_series(1, :n) g""", tid=tenant_id, uid=user_id, n=sessions)
    sql("""
        INSERT INTO refresh_tokens (tenant_id, session_id, digest, created_at, expires_at,
                                    rotated_at)
        SELECT :tid, md5('s' || (g % :n + 1))::uuid,
               decode(md5('t' || g) || md5('u' || g), 'hex'),
               now() - interval '40 days', now() - interval '20 days', now() - interval '39 days'
        FROM generate_series(1, :total) g""", tid=tenant_id, n=sessions,
        total=sessions * tokens_per_session)
    # What autovacuum does within a minute of a bulk load. Without it, a pooled connection
    # that first checked the current-token foreign key while the tables were tiny keeps its
    # cached sequential-scan plan for that check, and each deleted token scans the table.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE sessions, refresh_tokens"))
    return tenant_id


def test_purge_while_clients_refresh(app, live_server, ctx):
    tenants.create_tenant(tenants.TenantSettings("busy", "Busy"), utcnow())
    for i in range(8):
        users.create_user("busy", f"u{i}", "hunter2hunter2", utcnow())
    seed_purgeable(sessions=200, tokens_per_session=100, tenant="busy", username="u0")
    base = f"{live_server}/v1/tenants/busy"
    starts = [requests.post(f"{base}/token", timeout=30, data={
        "grant_type": "password", "username": f"u{i}", "password": "hunter2hunter2"}).json()
        for i in range(8)]
    reports = []

    def purge_repeatedly():
        with app.app_context():
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                reports.append(purge(utcnow(), 7 * DAY, 50))
            db.session.remove()

    purger = threading.Thread(target=purge_repeatedly)
    purger.start()
    results = run_together(_chain, [(base, s["refresh_token"], 40) for s in starts])
    purger.join()
    assert results == [[200] * 40] * 8
    assert sum(r.tokens for r in reports) == 200 * 100
    live = db.session.execute(sa.text(
        "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND tenant_id = "
        "(SELECT id FROM tenants WHERE slug = 'busy')")).scalar_one()
    db.session.rollback()
    assert live == 8
    assert chain_violations() == {"tokens_with_two_successors": 0,
                                  "sessions_with_two_current": 0}


@pytest.mark.slow
def test_large_purge_in_batches(ctx, user, capsys):
    acme = seed_purgeable(sessions=2000, tokens_per_session=100)  # 200,000 token rows
    report = purge(utcnow(), 7 * DAY, 1000, duty_cycle=1.0)  # flat out: batching, not pacing
    assert (report.sessions, report.tokens) == (2000, 200_000)
    assert exists("refresh_tokens", tenant_id=acme) == 0
    with capsys.disabled():
        print(f"\n[purge 200k tokens] {report.elapsed_s:.2f}s in {report.batches} batches, "
              f"longest transaction {report.longest_batch_s * 1000:.0f} ms")


def test_purge_of_one_tenant_keeps_other_tenants_throttle_counters(ctx, tenant):
    tenants.create_tenant(tenants.TenantSettings("beta", "Beta"), utcnow())
    old = utcnow() - 30 * DAY
    sql("INSERT INTO login_attempts (tenant_id, kind, key, window_start, attempts)"
        " SELECT id, 'user', 'alice', :old, 3 FROM tenants", old=old)
    sql("INSERT INTO login_address_attempts (address, window_start, attempts)"
        " VALUES ('192.0.2.1', :old, 3)", old=old)
    purge(utcnow(), 7 * DAY, 100, tenant_slug="beta")
    remaining = db.session.execute(sa.text(
        "SELECT t.slug FROM login_attempts a JOIN tenants t ON t.id = a.tenant_id")).scalars()
    assert list(remaining) == ["acme"]
    # The cross-tenant address counters belong to no tenant: only a full purge removes them.
    assert exists("login_address_attempts", address="192.0.2.1") == 1
    db.session.rollback()
    purge(utcnow(), 7 * DAY, 100)
    assert db.session.execute(sa.text("SELECT count(*) FROM login_attempts")).scalar_one() == 0
    assert exists("login_address_attempts", address="192.0.2.1") == 0
    db.session.rollback()
