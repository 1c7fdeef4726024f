"""Webhooks (SPEC §10): the claim/lease protocol of the event outbox, and endpoint health.

Delivery is at-least-once and signed per the Standard Webhooks specification (the
`standardwebhooks` package signs; receivers verify with it). Several deliverers may run at
once. Each one *claims* due events in a short transaction (`FOR UPDATE SKIP LOCKED`, then a
lease: `lease_until` and a random `lease_token`), commits, and only then POSTs, so no row
lock and no transaction is held during HTTP. A POST is cut off after the deliverer's
timeout, well inside the lease, so no other deliverer can take the event while it is still
being sent: nobody sends one event twice at the same time. The result is written back only
if the lease is still ours. A deliverer that dies mid-way leaves a lease that simply expires:
the event is sent again later (receivers deduplicate on `webhook-id`).

A claim is fair across tenants: it takes at most CLAIM_PER_ENDPOINT events of each endpoint
(a tenant has one), endpoints in round-robin order, so one tenant's backlog cannot fill it.
Each endpoint keeps its health on its row (app.services.audit.endpoint_health): failures
in a row, and after a run of them an open circuit, which keeps the endpoint out of every
claim until its backoff has passed; then one claim takes a single *probe* event (the backoff
is pushed out by a lease meanwhile, so other deliverers stay away), and a 2xx closes the
circuit. The deliverer's loop, which POSTs to several endpoints at once, is
app.services.audit.deliverer.
"""
from __future__ import annotations

import json
import logging
import random
import secrets
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import sqlalchemy as sa
from standardwebhooks import Webhook as Signer

from app.extensions import db
from app.services.audit import endpoint_health
from app.services.audit.events import event_body
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 15.0  # config.py: BATON_WEBHOOK_TIMEOUT_S
CLAIM_PER_ENDPOINT = 3  # events of one endpoint per claim, POSTed one after the other
# A claim's lease outlasts the POSTs of its events, with a margin; an event whose lease is
# too close to its end is not started (LEASE_MARGIN_S; see app.services.audit.deliverer).
LEASE_SLACK_S = 30
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


def lease_seconds(timeout_s: float, per_endpoint: int = CLAIM_PER_ENDPOINT) -> float:
    """A claim's lease: every event of one endpoint POSTed in turn, plus slack."""
    return per_endpoint * timeout_s + LEASE_SLACK_S


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
    lease_s: float
    probe: bool  # the one event sent to an endpoint whose circuit is open


# Endpoints with due, unleased events, not busy in this deliverer, whose circuit is closed or
# whose backoff has passed; round-robin: the tenant ids after the last one served, then the
# rest. Each half walks the primary key and stops at the limit.
_READY_WHERE = """
    (w.next_attempt_at IS NULL OR w.next_attempt_at <= now())
    AND w.tenant_id <> ALL (CAST(:busy AS bigint[]))
    AND EXISTS (SELECT 1 FROM events e
                WHERE e.tenant_id = w.tenant_id AND e.delivery = 'pending'
                  AND e.next_attempt_at <= now()
                  AND (e.lease_until IS NULL OR e.lease_until < now()))
"""
_READY = sa.text(f"""
    (SELECT w.tenant_id, w.circuit_opened_at IS NOT NULL AS probe FROM webhooks w
     WHERE w.tenant_id > :after AND {_READY_WHERE} ORDER BY w.tenant_id LIMIT :endpoints)
    UNION ALL
    (SELECT w.tenant_id, w.circuit_opened_at IS NOT NULL AS probe FROM webhooks w
     WHERE w.tenant_id <= :after AND {_READY_WHERE} ORDER BY w.tenant_id LIMIT :endpoints)
    LIMIT :endpoints
""")

# A probe is taken by pushing the open circuit's next attempt out by a lease: a concurrent
# claim waits for the row, re-reads it and no longer finds it due, so one probe at a time.
_TAKE_PROBES = sa.text("""
    UPDATE webhooks SET next_attempt_at = now() + make_interval(secs => :lease_s)
    WHERE tenant_id = ANY (CAST(:tenants AS bigint[])) AND circuit_opened_at IS NOT NULL
      AND (next_attempt_at IS NULL OR next_attempt_at <= now())
    RETURNING tenant_id
""")
_GIVE_BACK_PROBES = sa.text("""
    UPDATE webhooks SET next_attempt_at = now()
    WHERE tenant_id = ANY (CAST(:tenants AS bigint[])) AND circuit_opened_at IS NOT NULL
""")

# At most `quota` due, unleased events of each endpoint, oldest due first; rows another
# deliverer holds are skipped.
_CLAIM = sa.text("""
    WITH ready (tenant_id, quota) AS (
        SELECT * FROM unnest(CAST(:tenants AS bigint[]), CAST(:quotas AS int[]))
    ), due AS (
        SELECT d.id FROM ready r CROSS JOIN LATERAL (
            SELECT e.id FROM events e
            WHERE e.tenant_id = r.tenant_id AND e.delivery = 'pending'
              AND e.next_attempt_at <= now()
              AND (e.lease_until IS NULL OR e.lease_until < now())
            ORDER BY e.next_attempt_at
            LIMIT r.quota
            FOR UPDATE OF e SKIP LOCKED
        ) d
    )
    UPDATE events e
    SET lease_until = now() + make_interval(secs => :lease_s), lease_token = :token,
        attempts = e.attempts + 1
    FROM due, webhooks w, tenants t
    WHERE e.id = due.id AND w.tenant_id = e.tenant_id AND t.id = e.tenant_id
    RETURNING e.id, e.tenant_id, e.type, e.occurred_at, e.actor_type, e.actor_id, e.data,
              e.attempts, e.next_attempt_at, t.slug, w.url, w.secret_encrypted
""")


def claim(*, endpoints: int = 8, per_endpoint: int = CLAIM_PER_ENDPOINT,
          busy: Collection[int] = (), after: int = 0,
          timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Claimed]:
    """Lease due events of up to `endpoints` endpoints (not those in `busy`), at most
    `per_endpoint` each (one for a probe), starting after tenant id `after`; one short
    transaction. Grouped by endpoint in round-robin order, oldest due first in each."""
    token, claimed_at = secrets.token_hex(16), time.monotonic()
    lease_s = lease_seconds(timeout_s, per_endpoint)
    with transaction():
        ready = db.session.execute(_READY, {"busy": list(busy), "after": after,
                                            "endpoints": endpoints}).all()
        probes = [r.tenant_id for r in ready if r.probe]
        won = set(db.session.execute(_TAKE_PROBES, {"tenants": probes, "lease_s": lease_s})
                  .scalars()) if probes else set()
        quotas = {r.tenant_id: 1 if r.probe else per_endpoint for r in ready
                  if not r.probe or r.tenant_id in won}
        rows = list(db.session.execute(_CLAIM, {
            "tenants": list(quotas), "quotas": list(quotas.values()), "lease_s": lease_s,
            "token": token}).all()) if quotas else []
        unused = won - {r.tenant_id for r in rows}
        if unused:  # nothing left to probe with: the next claim may try again
            db.session.execute(_GIVE_BACK_PROBES, {"tenants": list(unused)})
    order = {tenant_id: i for i, tenant_id in enumerate(quotas)}
    rows.sort(key=lambda r: (order[r.tenant_id], r.next_attempt_at, r.id))
    return [Claimed(r.id, r.tenant_id, r.url, bytes(r.secret_encrypted), event_body(r),
                    r.occurred_at, r.attempts, token, claimed_at, lease_s, r.tenant_id in won)
            for r in rows]


def release(events: Collection[Claimed]) -> None:
    """Give claimed events back unsent (their attempt not counted), if still ours; a probe
    given back lets the next claim probe again at once."""
    if not events:
        return
    with transaction():
        probes = [e.tenant_id for e in events if e.probe]
        if probes:  # the endpoint row first, then events: the order set-webhook takes too
            db.session.execute(_GIVE_BACK_PROBES, {"tenants": probes})
        for token in {e.lease_token for e in events}:
            db.session.execute(sa.text("""
                UPDATE events SET lease_until = NULL, lease_token = NULL,
                                  attempts = attempts - 1
                WHERE id = ANY (CAST(:ids AS bigint[])) AND lease_token = :token
            """), {"ids": [e.id for e in events if e.lease_token == token], "token": token})


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


def record_delivery(event: Claimed, error: str | None) -> str:
    """Write one POST's outcome (the endpoint's health, then the event): 'delivered',
    'retry' or 'failed'. `error` is None for a 2xx."""
    now = datetime.now(timezone.utc)
    tenant = event.body["tenant"]
    if error is None:
        endpoint_health.succeeded(event.tenant_id, event.url, tenant)
        _finish(event, {"delivery": "delivered", "delivered_at": now, "last_error": None})
        return "delivered"
    endpoint_health.failed(event.tenant_id, event.url, tenant, error, RETRY_WINDOW)
    later = now + retry_delay(event.attempts)
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
