"""Clients chaining refreshes through a database failover, and what the promoted primary
says afterwards (SPEC §12): no acknowledged rotation lost, no fork, every chain goes on.

Each client is a process (tests/parallel.py) following its own session's chain; on a 503
or a cut connection it retries its current token, as a real client would.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import sqlalchemy as sa

from app.crypto import token_digest
from app.extensions import db
from tests.helpers import chain_violations
from tests.helpers import http_refresh
from tests.helpers import refresh_once
from tests.parallel import CONTEXT
from tests.parallel import run_together

NO_VIOLATIONS = {"tokens_with_two_successors": 0, "sessions_with_two_current": 0}
UNAVAILABLE = (0, 503)  # 0: no HTTP answer at all


def chain_until(base: str, tenant: str, token: str, stop) -> dict:
    """Refresh in a row with the newest token; on 503 or a cut connection retry the same one."""
    events: list[tuple[float, int, float]] = []  # (answered, status, sent)
    received: list[str] = []
    start = token
    with requests.Session() as http:
        while not stop.is_set():
            sent = time.time()
            try:
                response = http_refresh(base, tenant, token, http)
                status = response.status_code
            except (requests.ConnectionError, requests.Timeout):
                status = 0
            events.append((time.time(), status, sent))
            if status == 200:
                token = response.json()["refresh_token"]
                received.append(token)
            elif status in UNAVAILABLE:
                time.sleep(0.05)
            else:
                break  # a 400 here would be an honest retry punished as a replay
    return {"events": events, "received": received, "start": start, "last": token}


def race(base: str, tenant: str, starts: list[str], during: Callable[[], Any], *,
         before_s: float = 2.0, after_s: float = 4.0) -> tuple[list[dict], Any]:
    """Clients chain refreshes (one per start token) while `during()` runs, from `before_s`
    after they start until `after_s` after it returns. Returns their results and its own."""
    stop = CONTEXT.Event()
    outcome: dict = {}
    clients = threading.Thread(target=lambda: outcome.update(results=run_together(
        chain_until, [(base, tenant, token, stop) for token in starts], timeout=300)))
    clients.start()
    try:
        time.sleep(before_s)
        returned = during()
        time.sleep(after_s)
    finally:
        stop.set()
        clients.join(300)
    return outcome["results"], returned


def outage(results: list[dict]) -> dict:
    """The figures of the gap: when the first client saw it, and when every client that saw
    it was refreshing again (its first 200 after its own last 503 or cut connection)."""
    events = sorted(e for r in results for e in r["events"])
    statuses = [status for _, status, _ in events]
    unavailable = [t for t, status, _ in events if status in UNAVAILABLE]
    back = []
    for r in results:
        last_down = max((t for t, s, _ in r["events"] if s in UNAVAILABLE), default=None)
        if last_down is not None:
            back.append(min(t for t, s, _ in r["events"] if s == 200 and t > last_down))
    return {
        "first_unavailable": min(unavailable) if unavailable else None,
        "recovery_s": (max(back) - min(unavailable)) if unavailable else 0.0,
        "clients_hit": len(back),
        "ok": statuses.count(200), "503": statuses.count(503), "no_answer": statuses.count(0),
        "slowest_answer_s": max(t - sent for t, _, sent in events),
    }


def check_nothing_lost(app, base: str, tenant: str, results: list[dict]) -> int:
    """Assert what the (new) primary holds: every token a client got in a 200, each one the
    successor of the one before (the chain a client believed in is the database's), no
    fork, no session revoked; and every client's newest token refreshes. Returns how many
    acknowledged rotations were checked."""
    statuses = {status for r in results for _, status, _ in r["events"]}
    assert statuses <= {200, *UNAVAILABLE}, sorted(statuses)
    with app.app_context():
        for r in results:
            chain = [r["start"], *r["received"]]
            rows = {bytes(digest): id_ for digest, id_ in db.session.execute(sa.text(
                "SELECT digest, id FROM refresh_tokens WHERE digest = ANY(:digests)"),
                {"digests": [token_digest(t) for t in chain]})}
            ids = [rows.get(token_digest(t)) for t in chain]
            assert None not in ids, f"{ids.count(None)} acknowledged rotations lost"
            parents = dict(db.session.execute(sa.text(
                "SELECT id, parent_id FROM refresh_tokens WHERE id = ANY(:ids)"),
                {"ids": ids}).all())
            assert [parents[i] for i in ids[1:]] == ids[:-1]  # one unbroken chain
        revoked = db.session.execute(sa.text(
            "SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL")).scalar_one()
        db.session.rollback()
        violations = chain_violations()
        db.session.remove()
        db.engine.dispose()
    assert revoked == 0  # no honest retry was taken for a replay
    assert violations == NO_VIOLATIONS
    for r in results:
        assert refresh_once(base, tenant, r["last"])[0] == 200
    return sum(len(r["received"]) for r in results)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               every: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy; return it, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")

