"""Webhooks (SPEC §10): a tenant's endpoint and the deliverer of the event outbox.

Delivery is at-least-once and signed per the Standard Webhooks specification (the
`standardwebhooks` package signs; receivers verify with it). Several deliverers may run at
once. Each one *claims* a few due events in a short transaction (`FOR UPDATE SKIP LOCKED`,
then a lease: `lease_until` and a random `lease_token`), commits, and only then POSTs, so no
row lock and no transaction is held during HTTP. A POST is cut off by a watchdog after
POST_DEADLINE_S, well inside the lease, so no other deliverer can take the event while it is
still being sent: nobody sends one event twice at the same time. The result is written back
only if the lease is still ours. A deliverer that dies mid-way leaves a lease that simply
expires: the event is sent again later (receivers deduplicate on `webhook-id`).
"""
from __future__ import annotations

import http.client
import json
import logging
import random
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Callable
from urllib.parse import urlsplit

import sqlalchemy as sa
from standardwebhooks import Webhook as Signer

from app.crypto import decrypt_any
from app.extensions import db
from app.runtime import runtime
from app.services.audit.events import event_body
from app.services.errors import Unavailable
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
POST_DEADLINE_S = 15.0  # connect, send and read the answer, all of it
CLAIM_BATCH = 3  # events per claim
# A claim's lease outlasts the POSTs of its whole batch, with a margin; an event whose
# lease is too close to its end is not started (see deliver()).
LEASE_S = CLAIM_BATCH * POST_DEADLINE_S + 30
LEASE_MARGIN_S = 10
FIRST_RETRY_S = 30
MAX_RETRY_S = 6 * 3600
# Retries go on with doubling delays (30 s ... capped at 6 h) until the event is this old,
# then it is marked failed: a receiver may be down for three days and lose nothing.
RETRY_WINDOW = timedelta(days=3)
USER_AGENT = "Baton-Webhooks/1"


def secret_context(tenant_id: int) -> bytes:
    """Binds a webhook secret's ciphertext to its tenant (tenancy.webhook_endpoints)."""
    return b"baton-webhook-secret:" + str(tenant_id).encode()


# ---------------------------------------------------------------------------------------------
# Delivery


@dataclass(frozen=True)
class Claimed:
    id: int
    tenant_id: int
    url: str
    secret_encrypted: bytes
    body: dict
    occurred_at: datetime
    attempts: int  # including this one
    lease_token: str
    claimed_at: float  # time.monotonic() of the claim


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0


# Due, unleased events of tenants with a webhook; rows another deliverer holds are skipped.
_CLAIM = sa.text(
    """
    WITH due AS (
        SELECT e.id FROM events e
        WHERE e.delivery = 'pending' AND e.next_attempt_at <= now()
          AND (e.lease_until IS NULL OR e.lease_until < now())
        ORDER BY e.next_attempt_at
        LIMIT :batch
        FOR UPDATE SKIP LOCKED
    )
    UPDATE events e
    SET lease_until = now() + make_interval(secs => :lease_s), lease_token = :token,
        attempts = e.attempts + 1
    FROM due, webhooks w, tenants t
    WHERE e.id = due.id AND w.tenant_id = e.tenant_id AND t.id = e.tenant_id
    RETURNING e.id, e.tenant_id, e.type, e.occurred_at, e.actor_type, e.actor_id, e.data,
              e.attempts, t.slug, w.url, w.secret_encrypted
    """
)


def claim(batch: int = CLAIM_BATCH) -> list[Claimed]:
    """Lease up to `batch` due events in one short transaction."""
    token = secrets.token_hex(16)
    claimed_at = time.monotonic()
    with transaction():
        rows = db.session.execute(
            _CLAIM, {"batch": batch, "lease_s": LEASE_S, "token": token}).all()
    return [Claimed(r.id, r.tenant_id, r.url, bytes(r.secret_encrypted), event_body(r),
                    r.occurred_at, r.attempts, token, claimed_at) for r in rows]


def _finish(event: Claimed, values: dict) -> bool:
    """Write a delivery's outcome if our lease still holds; False if it had expired."""
    from app.models import Event

    with transaction():
        return db.session.execute(
            sa.update(Event)
            .where(Event.id == event.id, Event.lease_token == event.lease_token)
            .values(lease_until=None, lease_token=None, **values)
        ).rowcount == 1  # type: ignore[attr-defined]


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with jitter: 30 s, 1 min, 2 min, ... at most 6 h."""
    base = min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** max(0, attempts - 1))
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


def signed_request(event: Claimed, secret: bytes, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The POST body and its Standard Webhooks headers."""
    payload = json.dumps(event.body, separators=(",", ":"), ensure_ascii=False)
    msg_id = event.body["id"]
    signature = Signer(secret).sign(msg_id, now, payload)
    return payload.encode(), {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def _resolve(host: str, port: int, timeout_s: float) -> list[tuple]:
    """getaddrinfo with a bound: the resolver has no timeout of its own. A slow lookup is
    abandoned (its thread only resolves; it never sends anything)."""
    found: dict[str, object] = {}

    def lookup() -> None:
        try:
            found["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            found["error"] = exc

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(max(0.0, timeout_s))
    if worker.is_alive():
        raise TimeoutError("name resolution took too long")
    if "error" in found:
        raise found["error"]  # type: ignore[misc]
    return found["addresses"]  # type: ignore[return-value]


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    """A TCP connection made within the deadline, trying the resolved addresses in turn."""
    last: OSError = TimeoutError("no address answered in time")
    for family, kind, proto, _, address in _resolve(host, port, deadline - time.monotonic()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(min(CONNECT_TIMEOUT_S, remaining))
        try:
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def post(url: str, body: bytes, headers: dict[str, str],
         deadline_s: float = POST_DEADLINE_S) -> int:
    """POST and return the status. Never follows a redirect (a 3xx is a failure).

    The whole exchange is bounded by one deadline, so a delivery never outlives its lease
    (which would let another deliverer send the same event at the same time): name
    resolution and connecting count against it, nothing is sent once it has passed, and a
    watchdog shuts the socket at the deadline, however slowly the receiver drips its answer.
    """
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    deadline = time.monotonic() + deadline_s
    conn_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
    conn = conn_class(host, port, timeout=deadline_s)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        if conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(deadline_s, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        sock = _connect(host, port, deadline)
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        if expired.is_set() or time.monotonic() >= deadline:
            sock.close()
            raise TimeoutError(f"no connection within {deadline_s:.0f} s")
        conn.sock = sock
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(64 * 1024)  # a little of the answer; the status is what counts
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise TimeoutError(f"no answer within {deadline_s:.0f} s") from None
        raise exc
    finally:
        watchdog.cancel()
        conn.close()


def deliver_one(event: Claimed, now: datetime) -> str:
    """POST one claimed event and record the outcome: 'delivered', 'retry' or 'failed'."""
    try:
        secret, _ = decrypt_any(runtime().key_encryption_keys, event.secret_encrypted,
                                secret_context(event.tenant_id))
        body, headers = signed_request(event, secret, now)
        status = post(event.url, body, headers)
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except Exception as exc:  # any failure is a retry; the reason is kept, the URL is not logged
        error = f"{type(exc).__name__}: {exc}"[:200]
    if error is None:
        _finish(event, {"delivery": "delivered", "delivered_at": datetime.now(timezone.utc),
                        "last_error": None})
        return "delivered"
    later = datetime.now(timezone.utc) + retry_delay(event.attempts)
    if later - event.occurred_at > RETRY_WINDOW:
        _finish(event, {"delivery": "failed", "next_attempt_at": None, "last_error": error})
        log.warning("webhook delivery failed for good", extra={
            "event": "webhook_failed", "event_id": event.id, "attempts": event.attempts})
        return "failed"
    _finish(event, {"next_attempt_at": later, "last_error": error})
    log.info("webhook delivery will be retried", extra={
        "event": "webhook_retry", "event_id": event.id, "attempts": event.attempts,
        "error": error})
    return "retry"


def deliver(*, once: bool, idle_sleep_s: float = 2.0,
            should_stop: Callable[[], bool] = lambda: False) -> DeliveryReport:
    """Deliver due events. once=True drains what is due now and returns (cron)."""
    report = DeliveryReport()
    while not should_stop():
        # A refused event is due again only after its backoff, so --once tries each once.
        try:
            batch = claim()
        except Unavailable:
            if once:
                raise
            time.sleep(idle_sleep_s)  # the database is away: a daemon waits for it
            continue
        if not batch:
            if once:
                return report
            time.sleep(idle_sleep_s)
            continue
        for event in batch:
            if time.monotonic() - event.claimed_at > LEASE_S - POST_DEADLINE_S - LEASE_MARGIN_S:
                continue  # too little lease left to finish: it returns when the lease ends
            outcome = deliver_one(event, datetime.now(timezone.utc))
            if outcome == "delivered":
                report.delivered += 1
            elif outcome == "retry":
                report.retried += 1
            else:
                report.failed += 1
    return report
