"""The webhook deliverer's loop (`flask events deliver`; SPEC §10).

One process POSTs to up to `concurrency` endpoints at once, one POST at a time per endpoint
(a *lane*: the few events of one endpoint that a claim leased, sent in turn). The POSTs run
in a small thread pool; everything else, claims and outcomes, runs in the calling thread, so
the database session is never shared between threads. A receiver that hangs holds its own
lane for at most the timeout, while the other lanes go on and a free slot is claimed for the
next endpoint with due events. After a failure the rest of that lane is given back unsent:
the endpoint is probably down, and its events are tried again on a later claim (or, once its
circuit is open, after its backoff). The claim/lease protocol is app.services.audit.webhooks.
"""
from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone
from typing import Callable
from typing import Collection

from app.crypto import decrypt_any
from app.runtime import runtime
from app.services.audit import webhooks
from app.services.audit.posting import post
from app.services.audit.webhooks import Claimed
from app.services.errors import Unavailable

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0

    def count(self, outcome: str) -> None:
        if outcome == "delivered":
            self.delivered += 1
        elif outcome == "retry":
            self.retried += 1
        else:
            self.failed += 1


@dataclass
class Lane:
    """One endpoint's claimed events; `sending` is in flight in the pool."""

    waiting: deque[Claimed]
    sending: Claimed | None = None
    future: Future | None = None


def _send(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> str | None:
    """POST in a pool thread: None for a 2xx, else the reason (the URL is not in it)."""
    try:
        status = post(url, body, headers, deadline_s=timeout_s)
    except Exception as exc:  # any failure is a retry; the reason is kept
        return f"{type(exc).__name__}: {exc}"[:200]
    return None if 200 <= status < 300 else f"HTTP {status}"


class Deliverer:
    def __init__(self, pool: ThreadPoolExecutor, timeout_s: float, concurrency: int) -> None:
        self.pool, self.timeout_s, self.concurrency = pool, timeout_s, concurrency
        self.lanes: dict[int, Lane] = {}  # by tenant id: at most one per endpoint
        self.after = 0  # round robin: the last endpoint served
        self.report = DeliveryReport()

    def claim(self) -> bool:
        """Fill free slots with endpoints that have due events; True if any was found."""
        free = self.concurrency - len(self.lanes)
        if free <= 0:
            return False
        batch = webhooks.claim(endpoints=free, busy=list(self.lanes), after=self.after,
                               timeout_s=self.timeout_s)
        for event in batch:  # grouped by endpoint, in round-robin order; none busy here
            self.lanes.setdefault(event.tenant_id, Lane(deque())).waiting.append(event)
            self.after = event.tenant_id
        for tenant_id in {e.tenant_id for e in batch}:
            self._advance(tenant_id, stopping=False)
        return bool(batch)

    def _advance(self, tenant_id: int, stopping: bool) -> None:
        """Start the lane's next POST, or close the lane (giving back what it cannot send)."""
        lane = self.lanes[tenant_id]
        while lane.waiting:
            event = lane.waiting.popleft()
            left = event.lease_s - (time.monotonic() - event.claimed_at)
            if stopping or left < self.timeout_s + webhooks.LEASE_MARGIN_S:
                self._give_back([event, *lane.waiting])
                break
            try:
                secret, _ = decrypt_any(runtime().key_encryption_keys, event.secret_encrypted,
                                        webhooks.secret_context(event.tenant_id))
            except Exception as exc:  # an undecryptable secret fails like a dead receiver
                self._record(event, f"{type(exc).__name__}: secret not decryptable")
                self._give_back(lane.waiting)
                break
            body, headers = webhooks.signed_request(event, secret, datetime.now(timezone.utc))
            lane.sending = event
            lane.future = self.pool.submit(_send, event.url, body, headers, self.timeout_s)
            return
        del self.lanes[tenant_id]

    def _record(self, event: Claimed, error: str | None) -> bool:
        """Write one outcome; False if the database is away (the lease then just expires)."""
        try:
            self.report.count(webhooks.record_delivery(event, error))
            return True
        except Unavailable:
            log.warning("webhook outcome not recorded: database unavailable", extra={
                "event": "webhook_unrecorded", "event_id": event.id})
            return False

    def _give_back(self, events: Collection[Claimed]) -> None:
        """Release unsent events; if the database is away, their leases just expire."""
        try:
            webhooks.release(events)
        except Unavailable:
            log.warning("webhook events not given back: database unavailable", extra={
                "event": "webhook_unreleased", "events": len(events)})

    def collect(self, timeout_s: float, stopping: bool) -> None:
        """Wait up to timeout_s for POSTs to end; record them and move their lanes on."""
        futures = {lane.future: tenant_id for tenant_id, lane in self.lanes.items()
                   if lane.future is not None}
        done, _ = wait(futures, timeout=timeout_s, return_when=FIRST_COMPLETED)
        for future in done:
            tenant_id = futures[future]
            lane = self.lanes[tenant_id]
            event, lane.sending, lane.future = lane.sending, None, None
            assert event is not None
            error = future.result()
            if not self._record(event, error) or error is not None:
                self._give_back(lane.waiting)  # the endpoint is failing: try again later
                lane.waiting.clear()
            self._advance(tenant_id, stopping)


def deliver(*, once: bool, timeout_s: float = webhooks.DEFAULT_TIMEOUT_S, concurrency: int = 8,
            idle_sleep_s: float = 2.0,
            should_stop: Callable[[], bool] = lambda: False) -> DeliveryReport:
    """Deliver due events. once=True drains what is due now and returns (cron); otherwise
    run until should_stop(), then finish the POSTs in flight and give back the rest."""
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook") as pool:
        deliverer = Deliverer(pool, timeout_s, concurrency)
        while True:
            stopping = should_stop()
            if not stopping:
                try:
                    deliverer.claim()
                except Unavailable:
                    if once:
                        raise
                    # the database is away: a daemon waits for it
            if not deliverer.lanes:
                if once or stopping:
                    return deliverer.report
                time.sleep(idle_sleep_s)
                continue
            # A free slot is claimed again after idle_sleep_s (events may have arrived).
            deliverer.collect(idle_sleep_s, stopping)
