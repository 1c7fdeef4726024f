"""`GET /metrics` (SPEC §12): the counters of app/metrics.py, and the event gauges read from
the database at scrape time. Registered by the factory unless metrics are turned off.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import sqlalchemy as sa
from flask import Blueprint
from flask import Response
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import REGISTRY
from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest
from prometheus_client import values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.http.answers import Answer
from app.http.answers import refused
from app.http.operations import operation

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)


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
@operation("Prometheus text format, summed over every gunicorn worker. Protect it at the proxy.",
           tag="operations", returns=Answer(
               200, "Counters, histogram and event gauges.", media="text/plain",
               schema={"type": "string"},
               example='baton_refresh_total{outcome="rotated"} 1042.0\n'),
           refusals=(refused(404, "not_found", "Metrics are turned off (`BATON_METRICS=0`)."),))
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
