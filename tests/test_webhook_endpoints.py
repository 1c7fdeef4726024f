"""Per-endpoint delivery (SPEC §10, docs/operations.md *Webhooks*): one tenant's dead
receiver does not hold up another tenant's events; a failing endpoint is backed off as a
whole (its circuit opens) and probed with one event until it answers again."""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time

import pytest

from app.extensions import db
from app.services.accounts import users
from tests.factories import make_tenant
from tests.helpers import PROJECT_ROOT
from tests.helpers import utcnow
from tests.receivers import Receiver
from tests.test_webhooks import set_webhook


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
            time.sleep(0.3)
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
