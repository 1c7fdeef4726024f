"""Prometheus metrics (SPEC §12): counters kept in-process, exposed at `GET /metrics`.

Under gunicorn, prometheus_client runs in multiprocess mode: every worker writes its values
to memory-mapped files in PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py prepares the directory
at master start and tells the library when a worker exits), and a scrape sums them, so any
worker answers with the totals of all. Counting never touches the database; only the event
and webhook gauges are computed from it, at scrape time. `BATON_METRICS=0` disables everything
(no counting, no hook, and `/metrics` is 404). The endpoint itself: app/metrics_endpoint.py,
registered by the factory.
"""
from __future__ import annotations

import logging
import time

from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask.globals import request_ctx
from prometheus_client import Counter
from prometheus_client import Histogram

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


def init_metrics(app: Flask) -> bool:
    """Count requests unless METRICS_ENABLED is off; whether counting is on (the factory
    then serves the endpoint, app/metrics_endpoint.py)."""
    enabled = bool(app.config.get("METRICS_ENABLED", True))
    app.extensions["baton_metrics"] = enabled
    if enabled:
        app.after_request(_observe)
    return enabled


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
