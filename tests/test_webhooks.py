"""Webhooks (SPEC §10): set-webhook, signed at-least-once delivery to a real local receiver,
retries with backoff, no redirects, and parallel deliverers that never send one event twice."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select
from standardwebhooks import Webhook as Verifier

from app.extensions import db
from app.models import Event
from app.models import Webhook
from app.services.accounts import users
from app.services.audit import posting
from app.services.audit import webhooks
from app.services.signin import password_grant
from tests import secret_registry
from tests.helpers import PROJECT_ROOT
from tests.helpers import settled
from tests.helpers import utcnow
from tests.receivers import Receiver
from tests.receivers import free_port


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def set_webhook(runner, url: str, tenant: str = "acme") -> str:
    result = runner.invoke(args=["tenants", "set-webhook", tenant, url])
    assert result.exit_code == 0, result.output
    secret = result.output.rstrip("\n").splitlines()[-1]
    secret_registry.remember(secret)  # the whole-run check: never in a log line
    return secret


def make_events(n_logins: int = 2) -> None:
    """Real changes: logins (session.started), a disable (user.disabled, session.revoked)."""
    for _ in range(n_logins):
        password_grant.login("acme", "alice", "correct horse", now=utcnow(),
                            client_address="192.0.2.1")
    users.disable_user("acme", "alice", utcnow())


def stored() -> list[Event]:
    rows = db.session.scalars(select(Event).order_by(Event.id)).all()
    db.session.expunge_all()
    db.session.rollback()
    return rows


def deliver_once(runner) -> str:
    result = runner.invoke(args=["events", "deliver", "--once"])
    assert result.exit_code == 0, result.output
    return result.output


def test_set_webhook_prints_secret_once_alone_on_last_line(ctx, runner, tenant, receiver):
    result = runner.invoke(args=["tenants", "set-webhook", "acme", receiver.url])
    assert result.exit_code == 0
    last = result.output.rstrip("\n").splitlines()[-1]
    secret_registry.remember(last)
    assert last.startswith("whsec_") and " " not in last
    Verifier(last)  # the Standard Webhooks form
    assert result.output.count(last) == 1
    stored_row = db.session.execute(sa.text("SELECT url, secret_encrypted FROM webhooks")).one()
    db.session.rollback()
    assert stored_row.url == receiver.url
    assert last[6:].encode() not in bytes(stored_row.secret_encrypted)  # encrypted at rest


@pytest.mark.parametrize("args, message", [
    (["tenants", "set-webhook", "acme", "ftp://example.com/x"], "http:// or https://"),
    (["tenants", "set-webhook", "acme", "/relative"], "http:// or https://"),
    (["tenants", "set-webhook", "acme", "http://"], "http:// or https://"),
    (["tenants", "set-webhook", "acme", "http://u:p@example.com/"], "credentials"),
    (["tenants", "set-webhook", "acme", "http://example.com:99999/"], "not a valid URL"),
    (["tenants", "set-webhook", "acme", "http://exa mple.com/"], "without spaces"),
    (["tenants", "set-webhook", "acme"], "URL is required"),
    (["tenants", "set-webhook", "nope", "https://example.com/"], "unknown tenant"),
    (["tenants", "set-webhook", "acme", "--disable"], "has no webhook"),
    (["tenants", "set-webhook", "acme", "https://example.com/", "--disable"], "not both"),
])
def test_set_webhook_mistakes_are_one_line(ctx, runner, tenant, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_every_event_arrives_signed_and_verifies(ctx, runner, user, receiver):
    secret = set_webhook(runner, receiver.url)
    make_events()  # 2 session.started, user.disabled, 2 session.revoked
    expected = {str(e.id): e for e in stored() if e.delivery == "pending"}
    assert len(expected) == 5
    assert "Delivered 5 event(s)" in deliver_once(runner)
    assert sorted(receiver.ids(), key=int) == sorted(expected, key=int)
    listed = {e["id"]: e for e in settled(expected[min(expected)].tenant_id, expect=6).events}
    verifier = Verifier(secret)
    for headers, body in receiver.requests:
        payload = verifier.verify(body, headers)  # raises unless signed with this secret
        assert payload == listed[headers["webhook-id"]]  # the SPEC §10 event shape
        assert headers["Content-Type"] == "application/json"
        assert headers["webhook-id"] == payload["id"]
        assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
        with pytest.raises(Exception):
            Verifier("whsec_" + "A" * 43 + "=").verify(body, headers)
    assert {e.delivery for e in stored() if str(e.id) in expected} == {"delivered"}
    assert "Delivered 0 event(s)" in deliver_once(runner)  # nothing twice
    assert len(receiver.requests) == 5


def test_events_without_a_webhook_are_not_owed(ctx, runner, user, receiver):
    make_events(1)
    assert {e.delivery for e in stored()} == {"none"}
    set_webhook(runner, receiver.url)
    assert "Delivered 0 event(s)" in deliver_once(runner)
    users.create_user("acme", "bob", "correct horse", utcnow())  # owed a delivery...
    assert [e.delivery for e in stored()].count("pending") == 1
    result = runner.invoke(args=["tenants", "set-webhook", "acme", "--disable"])
    assert "1 undelivered event(s) will not be sent" in result.output  # ...until removed
    assert [e.delivery for e in stored()].count("pending") == 0
    assert "Delivered 0 event(s)" in deliver_once(runner)
    assert receiver.requests == []


def test_receiver_down_then_up_loses_nothing(ctx, runner, user):
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}/hook"
    secret = set_webhook(runner, url)
    make_events()
    assert "Delivered 0 event(s); 5 to retry later" in deliver_once(runner)
    first = [e for e in stored() if e.delivery == "pending"]
    assert all(e.delivery == "pending" and e.attempts == 1 and e.last_error for e in first)
    for e in first:  # the first retry waits about 30 s (with jitter)
        assert timedelta(seconds=20) < e.next_attempt_at - utcnow() < timedelta(seconds=40)
    # Not due yet: a run now sends nothing and tries nothing.
    assert "Delivered 0 event(s); 0 to retry" in deliver_once(runner)

    receiver = Receiver(port=port)
    try:
        # Time passes, for the events and for the endpoint (its circuit opened after the
        # five failures in a row: tests/test_webhook_endpoints.py).
        db.session.execute(sa.update(Event).values(next_attempt_at=sa.func.now()))
        db.session.execute(sa.update(Webhook).values(next_attempt_at=sa.func.now()))
        db.session.commit()
        assert "Delivered 5 event(s)" in deliver_once(runner)
        assert sorted(receiver.ids()) == sorted(str(e.id) for e in first)
        for headers, body in receiver.requests:
            Verifier(secret).verify(body, headers)
    finally:
        receiver.close()
    assert all(e.delivery == "delivered" and e.attempts == 2 for e in stored()
               if e.delivery != "none")


def test_backoff_doubles_and_gives_up_after_the_retry_window(ctx, runner, user):
    for n in range(1, 20):
        base = min(webhooks.MAX_RETRY_S, webhooks.FIRST_RETRY_S * 2 ** (n - 1))
        assert 0.8 * base <= webhooks.retry_delay(n).total_seconds() <= 1.2 * base
    # Retrying goes on for at least 24 h before an event counts as failed.
    assert webhooks.RETRY_WINDOW >= timedelta(hours=24)
    set_webhook(runner, f"http://127.0.0.1:{free_port()}/hook")
    make_events(1)
    db.session.execute(sa.update(Event).values(
        occurred_at=utcnow() - webhooks.RETRY_WINDOW + timedelta(seconds=10)))
    db.session.commit()
    assert "0 to retry later, 3 failed for good" in deliver_once(runner)
    assert Counter(e.delivery for e in stored()) == {"failed": 3, "none": 1}


@pytest.mark.parametrize("status", [301, 302, 307, 308, 400, 500])
def test_redirects_are_not_followed_and_non_2xx_is_a_retry(ctx, runner, user, receiver, status):
    other = Receiver()
    try:
        bouncer = Receiver(status=status, headers={"Location": other.url})
        try:
            set_webhook(runner, bouncer.url)
            make_events(1)
            assert "0 event(s); 3 to retry later" in deliver_once(runner)
            assert len(bouncer.requests) == 3
            assert other.requests == []
            assert all(e.last_error == f"HTTP {status}" for e in stored() if e.delivery != "none")
        finally:
            bouncer.close()
    finally:
        other.close()


def test_a_receiver_that_never_answers_is_cut_off(ctx, user, receiver, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            posting.post(f"http://127.0.0.1:{silent.getsockname()[1]}/", b"{}", {},
                          deadline_s=1.0)
        assert time.monotonic() - started < 3
    finally:
        silent.close()


def test_slow_name_resolution_counts_against_the_deadline(receiver, monkeypatch):
    """DNS has no timeout of its own: a resolver slower than the deadline must not stretch a
    delivery past its lease (another deliverer could then send the same event at once), and
    nothing may be sent once the deadline has passed."""
    real = socket.getaddrinfo

    def slow_getaddrinfo(*args, **kwargs):
        time.sleep(2.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow_getaddrinfo)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        posting.post(receiver.url, b"{}", {}, deadline_s=1.0)
    assert time.monotonic() - started < 2
    time.sleep(2)  # the abandoned lookup finishes: it must not send anything afterwards
    assert receiver.ids() == []


def test_an_expired_lease_is_delivered_again(ctx, runner, user, receiver):
    """A deliverer that died after claiming: the event goes out once its lease has expired."""
    set_webhook(runner, receiver.url)
    make_events(1)
    claimed = webhooks.claim()
    assert len(claimed) == 3
    assert webhooks.claim() == []  # leased: nobody else takes them
    db.session.execute(sa.update(Event).values(lease_until=sa.func.now() - timedelta(seconds=1)))
    db.session.commit()
    assert "Delivered 3 event(s)" in deliver_once(runner)
    # The dead deliverer's late answer changes nothing: its lease is gone.
    assert webhooks._finish(claimed[0], {"delivery": "failed"}) is False
    assert Counter(e.delivery for e in stored()) == {"delivered": 3, "none": 1}


def _deliverer(database_url: str) -> subprocess.Popen:
    env = {**os.environ, "BATON_ENV": "test", "DATABASE_URL": database_url}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "events", "deliver", "--once"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_parallel_deliverers_never_send_an_event_twice(app, ctx, runner, user, database_url):
    slow = Receiver(delay_s=0.25)  # deliveries overlap in time
    try:
        secret = set_webhook(runner, slow.url)
        for _ in range(12):
            password_grant.login("acme", "alice", "correct horse", now=utcnow())
        users.disable_user("acme", "alice", utcnow())  # 12 session.revoked + user.disabled
        total = sum(1 for e in stored() if e.delivery == "pending")
        assert total == 25
        procs = [_deliverer(database_url) for _ in range(3)]
        outputs = [proc.communicate(timeout=120) for proc in procs]
        assert all(proc.returncode == 0 for proc in procs), outputs
        counts = Counter(slow.ids())
        assert sum(counts.values()) == total and set(counts.values()) == {1}, counts
        delivered = [int(out.split("Delivered ")[1].split(" ")[0]) for out, _ in outputs]
        assert sum(delivered) == total
        assert sum(1 for n in delivered if n > 0) >= 2, delivered  # they really ran together
        for headers, body in slow.requests:
            Verifier(secret).verify(body, headers)
    finally:
        slow.close()
    assert Counter(e.delivery for e in stored()) == {"delivered": 25, "none": 1}


def test_purge_removes_old_delivered_and_unowed_events_only(ctx, runner, user, receiver):
    make_events(1)  # no webhook: 'none'
    set_webhook(runner, receiver.url)
    users.create_user("acme", "bob", "correct horse", utcnow())  # pending, then delivered
    deliver_once(runner)
    set_webhook(runner, f"http://127.0.0.1:{free_port()}/down")
    users.create_user("acme", "carol", "correct horse", utcnow())  # pending, undeliverable
    deliver_once(runner)
    old = utcnow() - timedelta(days=30)
    db.session.execute(sa.update(Event).values(occurred_at=old))
    db.session.commit()
    states = Counter(e.delivery for e in stored())
    assert states == {"none": 4, "delivered": 1, "pending": 1}
    dry = runner.invoke(args=["tokens", "purge", "--dry-run"])
    assert "and 5 event(s)" in dry.output
    result = runner.invoke(args=["tokens", "purge"])
    assert result.exit_code == 0 and "and 5 event(s)" in result.output
    assert [e.delivery for e in stored()] == ["pending"]  # still owed: kept
    recent = runner.invoke(args=["tokens", "purge", "--retention", "60d"])
    assert "and 0 event(s)" in recent.output


@pytest.mark.slow
def test_deliverer_daemon_delivers_as_events_come_and_stops_on_sigterm(ctx, runner, user,
                                                                       receiver, database_url):
    set_webhook(runner, receiver.url)
    env = {**os.environ, "BATON_ENV": "test", "DATABASE_URL": database_url}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "events", "deliver"],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        users.create_user("acme", "bob", "correct horse", utcnow())
        deadline = time.monotonic() + 30
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(receiver.requests) == 1
        users.create_user("acme", "carol", "correct horse", utcnow())
        deadline = time.monotonic() + 30
        while len(receiver.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(receiver.requests) == 2
    finally:
        daemon.terminate()
        out, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "Delivered 2 event(s)" in out
