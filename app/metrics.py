"""Prometheus metrics (SPEC §12): counters kept in-process, exposed at `GET /metrics`.

Under gunicorn, prometheus_client runs in multiprocess mode: every worker writes its values
to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py prepares the directory
at master start and tells the library when a worker exits), and a scrape sums them, so any
worker answers with the totals of all. Counting never touches the database; only the event
and webhook gauges are computed from it, at scrape time. `BATON_METRICS=0` disables everything
(no counting, no hook, and `/metrics` is 404).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import sqlalchemy as sa
from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask.globals import request_ctx
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client import values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db

log = logging.getLogger(__name__)

REFRESH_OUTCOMES = ("rotated", "duplicate", "replay", "invalid", "expired", "revoked")
LOGIN_OUTCOMES = ("success", "invalid", "throttled")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# prometheus_client appends `_total` to counter names on exposition.
REFRESH = Counter("baton_refresh", "Refresh-token grants by outcome.", ["outcome"])
LOGIN = Counter("baton_login", "Password logins by outcome.", ["outcome"])
HTTP_DURATION = Histogram("baton_http_request_duration_seconds",
                          "Request duration by route name, method and status.",
                          ["endpoint", "method", "status"])
LOCK_TIMEOUTS = Counter("baton_lock_timeouts", "Lock waits that ran into lock_timeout (503).")
DB_UNAVAILABLE = Counter("baton_db_unavailable",
                         "Requests answered 503 because the database was unavailable.")
# Every series exists from the start, at 0; the children are kept, so counting is one
# dict lookup and an increment (no labels() call per request).
_REFRESH_BY_OUTCOME = {outcome: REFRESH.labels(outcome) for outcome in REFRESH_OUTCOMES}
_LOGIN_BY_OUTCOME = {outcome: LOGIN.labels(outcome) for outcome in LOGIN_OUTCOMES}

bp = Blueprint("metrics", __name__)


def _enabled() -> bool:
    return current_app.extensions.get("baton_metrics", False)


def count_refresh(outcome: str) -> None:
    if _enabled():
        _REFRESH_BY_OUTCOME[outcome].inc()


def count_login(outcome: str) -> None:
    if _enabled():
        _LOGIN_BY_OUTCOME[outcome].inc()


def count_unavailable(lock_timeout: bool) -> None:
    """A 503 from the database: a lock wait past lock_timeout, or the database itself."""
    if _enabled():
        (LOCK_TIMEOUTS if lock_timeout else DB_UNAVAILABLE).inc()


def init_metrics(app: Flask) -> None:
    """Count and expose metrics unless METRICS_ENABLED is off."""
    enabled = bool(app.config.get("METRICS_ENABLED", True))
    app.extensions["baton_metrics"] = enabled
    if not enabled:
        return
    app.after_request(_observe)
    app.register_blueprint(bp)


# Labelled histogram children by (endpoint, method, status): bounded by the routes, methods
# and statuses, and looked up without labels()'s validation and lock on every request.
_durations: dict[tuple[str, str, int], Histogram] = {}


def _observe(response: Response) -> Response:
    # The request's start is taken once, by the request log's before_request (app.logs),
    # which is registered first: one hook per request instead of two.
    started = g.get("request_started")
    if started is not None:
        req = request_ctx.request  # one proxy lookup, not four
        # The route's name, never the raw path: unknown paths share one series; so do
        # unknown methods, in the series and in this cache (a client can invent any number).
        method = req.method if req.method in _METHODS else "other"
        key = (req.endpoint or "unmatched", method, response.status_code)
        child = _durations.get(key)
        if child is None:
            child = _durations[key] = HTTP_DURATION.labels(key[0], method, str(key[2]))
        child.observe(time.perf_counter() - started)
    return response


_PENDING = sa.text(
    "SELECT count(*) AS pending, min(occurred_at) AS oldest, now() AS now,"
    " (SELECT count(*) FROM webhooks WHERE consecutive_failures > 0) AS failing,"
    " (SELECT count(*) FROM webhooks WHERE circuit_opened_at IS NOT NULL) AS open"
    " FROM events WHERE delivery = 'pending'"
)


class EventsCollector:
    """baton_events_pending, baton_events_oldest_pending_seconds and the webhook endpoint
    counts (no tenant label: which endpoints, `flask events endpoints` says), read at
    scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            with db.engine.connect() as conn:  # uses the partial index of pending events
                row = conn.execute(_PENDING).one()
        except SQLAlchemyError as exc:
            # The counters are still worth a scrape while the database is away.
            log.warning("metrics: event gauges unavailable: %s", type(exc).__name__)
            return
        yield GaugeMetricFamily("baton_events_pending",
                                "Events still owed a webhook delivery.", value=row.pending)
        age = (row.now - row.oldest).total_seconds() if row.oldest else 0.0
        yield GaugeMetricFamily("baton_events_oldest_pending_seconds",
                                "Age of the oldest event still owed a delivery.",
                                value=max(0.0, age))
        yield GaugeMetricFamily("baton_webhook_endpoints_failing",
                                "Webhook endpoints whose last delivery failed.",
                                value=row.failing)
        yield GaugeMetricFamily("baton_webhook_endpoints_circuit_open",
                                "Webhook endpoints left alone after failures in a row.",
                                value=row.open)


def multiprocess_mode() -> bool:
    """True when prometheus_client was imported with PROMETHEUS_MULTIPROC_DIR set."""
    return values.ValueClass is not values.MutexValue


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    """Prometheus text format: this process's (or every worker's) counters and the gauges."""
    events = CollectorRegistry(auto_describe=False)
    events.register(EventsCollector())
    if multiprocess_mode():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        body = generate_latest(registry) + generate_latest(events)
    else:
        body = generate_latest(REGISTRY) + generate_latest(events)
    return Response(body, content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})
