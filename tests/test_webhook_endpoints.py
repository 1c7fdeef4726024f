"""Per-endpoint delivery (SPEC §10, docs/operations.md *Webhooks*): one tenant's dead
receiver does not hold up another tenant's events; a failing endpoint is backed off as a
whole (its circuit opens) and probed with one event until it answers again."""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Event
from app.models import Webhook
from app.services.accounts import users
from app.services.audit import endpoint_health
from app.services.audit import webhooks
from tests.factories import make_tenant
from tests.helpers import PROJECT_ROOT
from tests.helpers import utcnow
from tests.receivers import Receiver
from tests.receivers import free_port
from tests.test_metrics import parse
from tests.test_metrics import value
from tests.test_webhooks import deliver_once
from tests.test_webhooks import set_webhook
from tests.test_webhooks import stored


def make_users(tenant: str, n: int, prefix: str = "user") -> None:
    """n user.created events of the tenant."""
    for i in range(n):
        users.create_user(tenant, f"{prefix}{i}", "correct horse", utcnow())
    db.session.remove()


def endpoint(tenant_id: int = 1) -> Webhook:
    row = db.session.get(Webhook, tenant_id)
    assert row is not None
    db.session.expunge_all()
    db.session.rollback()
    return row


def time_passes(tenant_id: int = 1) -> None:
    """Every retry and the endpoint's backoff are due now."""
    db.session.execute(sa.update(Event).where(Event.delivery == "pending")
                       .values(next_attempt_at=sa.func.now()))
    db.session.execute(sa.update(Webhook).where(Webhook.tenant_id == tenant_id)
                       .values(next_attempt_at=sa.func.now()))
    db.session.commit()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def dead_port():
    """A local port nothing listens on (yet): every POST there is refused at once."""
    return free_port()


@pytest.fixture
def open_circuit(ctx, runner, tenant, dead_port):
    """acme's endpoint refused five POSTs in a row; 8 events owed, 5 of them tried once."""
    set_webhook(runner, f"http://127.0.0.1:{dead_port}/hook")
    make_users("acme", 8)
    assert "Delivered 0 event(s); 5 to retry later, 0 failed" in deliver_once(runner)
    return dead_port


def test_five_failures_in_a_row_open_the_circuit(open_circuit, runner, client):
    row = endpoint()
    assert row.consecutive_failures == endpoint_health.CIRCUIT_THRESHOLD == 5
    assert row.circuit_opened_at is not None and "ConnectionRefusedError" in row.last_error
    # Left alone for 30 s (±20 %): the events not yet tried are not tried either.
    assert timedelta(seconds=23) < row.next_attempt_at - utcnow() < timedelta(seconds=37)
    assert Counter(e.attempts for e in stored()) == {1: 5, 0: 3}
    assert "Delivered 0 event(s); 0 to retry later" in deliver_once(runner)
    assert Counter(e.attempts for e in stored()) == {1: 5, 0: 3}
    samples = parse(client.get("/metrics").get_data(as_text=True))
    assert value(samples, "baton_webhook_endpoints_failing") == 1
    assert value(samples, "baton_webhook_endpoints_circuit_open") == 1
    listed = runner.invoke(args=["events", "endpoints", "--failing"])
    assert listed.exit_code == 0
    assert "acme" in listed.output and "ConnectionRefusedError" in listed.output
    assert f":{open_circuit}/hook" in listed.output


def test_an_open_circuit_is_probed_with_one_event_at_a_time(open_circuit, runner, client):
    time_passes()
    probe = webhooks.claim()
    assert len(probe) == 1 and probe[0].probe
    assert webhooks.claim() == []  # the probe holds the endpoint, for every deliverer
    webhooks.release(probe)  # a probe given back unsent: the next claim may probe at once
    again = webhooks.claim()
    assert len(again) == 1 and again[0].probe
    db.session.execute(sa.update(Event).values(lease_until=None, lease_token=None))
    db.session.commit()
    receiver = Receiver(port=open_circuit)  # the receiver is back
    try:
        time_passes()
        # The probe answers 2xx, the circuit closes, and the rest follows in the same run.
        assert "Delivered 8 event(s); 0 to retry later" in deliver_once(runner)
        assert len(receiver.requests) == 8
    finally:
        receiver.close()
    row = endpoint()
    assert (row.consecutive_failures, row.circuit_opened_at, row.next_attempt_at,
            row.last_error) == (0, None, None, None)
    samples = parse(client.get("/metrics").get_data(as_text=True))
    assert value(samples, "baton_webhook_endpoints_failing") == 0
    assert value(samples, "baton_webhook_endpoints_circuit_open") == 0


def test_concurrent_claims_take_one_probe_between_them(app, open_circuit):
    """Deliverers claiming at the same moment (threads, each with its own session) send an
    endpoint with an open circuit one probe in all, never one each."""
    n = 6
    for _ in range(5):
        time_passes()
        barrier, out = threading.Barrier(n), [None] * n

        def claim_one(i: int) -> None:
            with app.app_context():
                barrier.wait()
                out[i] = webhooks.claim()
                db.session.remove()

        threads = [threading.Thread(target=claim_one, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        probes = [e for claimed in out for e in claimed]
        assert len(probes) == 1 and probes[0].probe, out
        webhooks.release(probes)


def test_a_failed_probe_backs_off_further(open_circuit, runner):
    opened = endpoint().circuit_opened_at
    time_passes()
    assert "Delivered 0 event(s); 1 to retry later" in deliver_once(runner)  # one probe only
    row = endpoint()
    assert row.consecutive_failures == 6 and row.circuit_opened_at == opened
    assert timedelta(seconds=47) < row.next_attempt_at - utcnow() < timedelta(seconds=73)
    assert Counter(e.attempts for e in stored()) in ({2: 1, 1: 4, 0: 3}, {1: 6, 0: 2})


def test_events_past_the_retry_window_fail_while_the_circuit_is_open(open_circuit, runner):
    db.session.execute(sa.update(Event).values(
        occurred_at=utcnow() - webhooks.RETRY_WINDOW - timedelta(minutes=1)))
    db.session.commit()
    time_passes()
    # The probe fails for good (its next retry would fall outside the window), and so do
    # the seven events that were waiting behind the open circuit.
    assert "0 to retry later, 1 failed for good" in deliver_once(runner)
    events = stored()
    assert Counter(e.delivery for e in events) == {"failed": 8}
    assert sum("retry window ended" in e.last_error for e in events) == 7


def test_a_new_url_is_a_new_endpoint(open_circuit, runner, receiver):
    set_webhook(runner, receiver.url)
    row = endpoint()
    assert (row.consecutive_failures, row.circuit_opened_at, row.next_attempt_at) == (0, None, None)
    # The three events never tried go at once; the five tried keep their own retry time.
    assert "Delivered 3 event(s)" in deliver_once(runner)


def test_an_old_urls_late_outcome_changes_nothing(ctx, runner, tenant, receiver):
    set_webhook(runner, "http://127.0.0.1:9/old")
    endpoint_health.failed(1, "http://127.0.0.1:9/other", "acme", "HTTP 500",
                           webhooks.RETRY_WINDOW)
    assert endpoint().consecutive_failures == 0


@pytest.fixture
def three_backlogs(ctx, runner, tenant):
    """acme, beta and gamma (tenant ids 1, 2, 3) with webhooks and 6 due events each."""
    for slug in ("beta", "gamma"):
        make_tenant(slug)
    for slug in ("acme", "beta", "gamma"):
        set_webhook(runner, f"http://127.0.0.1:9/{slug}", slug)
        make_users(slug, 6)


def test_a_claim_takes_a_few_events_of_each_endpoint(three_backlogs):
    claimed = webhooks.claim(endpoints=8)
    assert [e.tenant_id for e in claimed] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    # Oldest due first within an endpoint.
    assert [e.id for e in claimed[:3]] == sorted(e.id for e in claimed[:3])


def test_claims_go_round_robin_over_endpoints(three_backlogs):
    assert {e.tenant_id for e in webhooks.claim(endpoints=1)} == {1}
    assert {e.tenant_id for e in webhooks.claim(endpoints=1, after=1)} == {2}
    assert {e.tenant_id for e in webhooks.claim(endpoints=2, after=2)} == {3, 1}  # wraps
    # An endpoint this deliverer is already sending to is left to it.
    assert {e.tenant_id for e in webhooks.claim(endpoints=8, busy=[1, 3])} == {2}


def test_a_hanging_receiver_holds_only_its_own_slot(ctx, runner, tenant):
    """One deliverer (--once, in-process): while acme's POST hangs until the timeout, beta's
    events go out beside it, not after it (one after the other, beta would wait 1 s)."""
    make_tenant("beta")
    dead, healthy = Receiver(hang=True), Receiver()
    try:
        set_webhook(runner, dead.url, "acme")
        set_webhook(runner, healthy.url, "beta")
        make_users("acme", 1)  # the older event: a single queue would send it first
        make_users("beta", 4)
        started = time.monotonic()
        result = runner.invoke(args=["events", "deliver", "--once", "--timeout", "1"])
        assert result.exit_code == 0, result.output
        assert "Delivered 4 event(s); 1 to retry later" in result.output
        assert len(dead.arrivals) == 1 and len(healthy.arrivals) == 4
        # Every beta event arrived before acme's POST was cut off.
        assert max(t for _, t in healthy.arrivals) < started + 1, (
            started, dead.arrivals, healthy.arrivals)
    finally:
        dead.close()
        healthy.close()


@pytest.mark.parametrize("option", [["--timeout", "0"], ["--timeout", "121"],
                                    ["--concurrency", "0"], ["--concurrency", "65"],
                                    ["--concurrency", "many"]])
def test_deliver_options_are_checked(runner, option):
    result = runner.invoke(args=["events", "deliver", "--once", *option])
    assert result.exit_code != 0
    assert result.output.startswith("Error: ") and len(result.output.strip().splitlines()) == 1


def _wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.slow
def test_a_hanging_receiver_does_not_delay_another_tenant(app, ctx, runner, tenant,
                                                         database_url):
    """Tenant acme's receiver accepts and never answers; beta's answers at once. With one
    deliverer (default settings: 15 s per POST), beta's events still arrive in seconds."""
    make_tenant("beta")
    dead, healthy = Receiver(hang=True), Receiver()
    env = {**os.environ, "BATON_ENV": "test", "DATABASE_URL": database_url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    daemon = None
    try:
        set_webhook(runner, dead.url, "acme")
        set_webhook(runner, healthy.url, "beta")
        for i in range(10):  # a backlog for the dead receiver
            users.create_user("acme", f"user{i}", "correct horse", utcnow())
        db.session.remove()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "events", "deliver"],
            cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        assert _wait_for(lambda: dead.arrivals, 30), "the deliverer never tried acme"
        latencies = []
        for i in range(6):  # beta's events, while acme's POST hangs
            users.create_user("beta", f"user{i}", "correct horse", utcnow())
            committed = time.monotonic()
            db.session.remove()
            assert _wait_for(lambda: len(healthy.arrivals) > i, 20), latencies
            latencies.append(healthy.arrivals[i][1] - committed)
            time.sleep(0.3 + 0.35 * i)  # not in step with the deliverer's 2 s poll
        print(f"\nhealthy receiver beside a hanging one: latency min {min(latencies):.2f} s, "
              f"median {statistics.median(latencies):.2f} s, max {max(latencies):.2f} s "
              f"over {len(latencies)} events; hanging receiver got {len(dead.arrivals)} "
              f"request(s)")
        # The old deliverer sent acme's backlog first, 15 s per POST: beta waited 45 s or more.
        assert max(latencies) < 8, latencies
    finally:
        dead.release()
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            out, err = daemon.communicate(timeout=60)
        dead.close()
        healthy.close()
    assert daemon.returncode == 0, err
    assert "Delivered 6 event(s)" in out, out
