"""A webhook endpoint's health (SPEC §10): failures in a row, and a circuit.

Every POST's outcome is written to its endpoint's row (`webhooks`, one per tenant). A 2xx
resets it. After CIRCUIT_THRESHOLD failures in a row the circuit opens: the endpoint takes
no events before `next_attempt_at` (30 s, 1 min, 2 min, ... at most 5 min, ±20 %, growing
with each further failure), then one probe event (app.services.audit.webhooks.claim). While
the circuit is open, events whose retry window has ended are marked failed, as they would
have been had each been retried on its own. Writes name the URL they were about, so the
outcome of a POST to a URL that has since been replaced changes nothing.
"""
from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)

CIRCUIT_THRESHOLD = 5
CIRCUIT_FIRST_BACKOFF_S = 30
CIRCUIT_MAX_BACKOFF_S = 300

_SUCCEEDED = sa.text("""
    WITH old AS (
        SELECT tenant_id, consecutive_failures, circuit_opened_at FROM webhooks
        WHERE tenant_id = :tenant_id AND url = :url
          AND (consecutive_failures > 0 OR circuit_opened_at IS NOT NULL)
        FOR UPDATE
    )
    UPDATE webhooks w SET consecutive_failures = 0, circuit_opened_at = NULL,
                          next_attempt_at = NULL, last_error = NULL
    FROM old WHERE w.tenant_id = old.tenant_id
    RETURNING old.consecutive_failures, old.circuit_opened_at
""")

# In SET, the columns on the right are the row's values before this update.
_FAILED = sa.text("""
    UPDATE webhooks SET
        consecutive_failures = consecutive_failures + 1,
        last_error = :error,
        circuit_opened_at = CASE WHEN consecutive_failures + 1 >= :threshold
                                 THEN COALESCE(circuit_opened_at, now()) END,
        next_attempt_at = CASE WHEN consecutive_failures + 1 >= :threshold THEN now()
            + make_interval(secs => LEAST(:max_s, :first_s
                                          * power(2, LEAST(consecutive_failures + 1
                                                           - :threshold, 20)))
                                    * (0.8 + 0.4 * random())) END
    WHERE tenant_id = :tenant_id AND url = :url
    RETURNING consecutive_failures, circuit_opened_at, next_attempt_at - now() AS backoff
""")

# Events of an endpoint with an open circuit that are past their retry window (and not in
# anyone's hands) fail now: they would otherwise wait for probes one at a time.
_EXPIRE = sa.text("""
    UPDATE events SET delivery = 'failed', next_attempt_at = NULL, last_error = :error
    WHERE tenant_id = :tenant_id AND delivery = 'pending'
      AND occurred_at < now() - make_interval(secs => :window_s)
      AND (lease_until IS NULL OR lease_until < now())
""")


def succeeded(tenant_id: int, url: str, tenant: str) -> None:
    """A 2xx: the endpoint is healthy again (nothing is written if it already was)."""
    with transaction():
        old = db.session.execute(_SUCCEEDED, {"tenant_id": tenant_id, "url": url}).first()
    if old is not None and old.circuit_opened_at is not None:
        log.info("webhook endpoint answers again; circuit closed", extra={
            "event": "webhook_circuit_closed", "tenant": tenant,
            "failures": old.consecutive_failures})


def failed(tenant_id: int, url: str, tenant: str, error: str, window: timedelta) -> None:
    """A failed POST: count it; at the threshold open the circuit (or back off further)."""
    with transaction():
        row = db.session.execute(_FAILED, {
            "tenant_id": tenant_id, "url": url, "error": error,
            "threshold": CIRCUIT_THRESHOLD, "first_s": CIRCUIT_FIRST_BACKOFF_S,
            "max_s": CIRCUIT_MAX_BACKOFF_S}).first()
        if row is None or row.circuit_opened_at is None:
            return
        expired = db.session.execute(_EXPIRE, {
            "tenant_id": tenant_id, "window_s": window.total_seconds(),
            "error": f"retry window ended while the endpoint failed: {error}"[:200],
        }).rowcount  # type: ignore[attr-defined]
    fields = {"tenant": tenant, "failures": row.consecutive_failures,
              "retry_in_s": round(row.backoff.total_seconds()), "error": error}
    if row.consecutive_failures == CIRCUIT_THRESHOLD:
        log.warning("webhook endpoint keeps failing; circuit opened",
                    extra={"event": "webhook_circuit_opened", **fields})
    else:
        log.info("webhook endpoint probe failed", extra={"event": "webhook_probe_failed",
                                                         **fields})
    if expired:
        log.warning("webhook events failed for good: retry window ended", extra={
            "event": "webhook_failed", "tenant": tenant, "events": expired})
