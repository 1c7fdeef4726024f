"""Structured logging: one JSON object per line, one line per request, with a request id.

Security events are their own lines with an `event` field. No token, password
or secret is ever passed to a logger: callers log ids (session, user) only.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime
from datetime import timezone
from typing import Any

from flask import Flask
from flask import Response
from flask import g
from flask import has_request_context
from flask import request
from flask.globals import request_ctx
from pythonjsonlogger import json as json_logs

log = logging.getLogger("app.request")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class JsonFormatter(json_logs.JsonFormatter):
    """python-json-logger with Baton's field names: ts, level, logger, msg, request_id, the
    record's `extra` fields and exc."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(message)s",
                         rename_fields={"levelname": "level", "name": "logger",
                                        "message": "msg", "exc_info": "exc"})

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["ts"] = datetime.fromtimestamp(record.created, timezone.utc)  # first, as before
        super().add_fields(log_data, record, message_dict)
        if has_request_context() and "request_id" in g:
            log_data["request_id"] = g.request_id


def configure_logging(app: Flask) -> None:
    """JSON lines on stderr for the `app` loggers (once per process)."""
    logger = logging.getLogger("app")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    app.before_request(_start_request)
    app.after_request(_log_request)


def _start_request() -> None:
    g.request_started = time.perf_counter()
    offered = request.headers.get("X-Request-ID", "")
    # fullmatch: `$` would also accept a trailing newline, echoed into a response header.
    g.request_id = offered if _REQUEST_ID.fullmatch(offered) else uuid.uuid4().hex


def _log_request(response: Response) -> Response:
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers["X-Request-ID"] = request_id
    if not log.isEnabledFor(logging.INFO):
        return response
    started = g.get("request_started", time.perf_counter())
    req = request_ctx.request  # one proxy lookup, not eight
    route = req.url_rule.rule if req.url_rule else None
    fields = {
        "event": "request",
        "method": req.method,
        "route": route,
        "tenant": (req.view_args or {}).get("tenant"),
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "client": req.remote_addr,
    }
    message = f"{req.method} {route or '-'} {response.status_code}"
    stream = _only_stream()
    if stream is None:
        log.info(message, extra=fields)
    else:
        _write_line(stream, message, fields, request_id)
    return response


# The request line is the one line every request writes: through the logging module it costs
# about as much as the rest of the hooks together (docs/performance.md). When the JSON handler
# that configure_logging installs is the only place the line would go (no handler of its own
# on `app.request`, and none on the root: an operator's own logging config, pytest's capture),
# the line is written to that handler's stream directly, with the same fields, in the same
# order, under the handler's lock; anywhere else, through the logging module as every line.
def _only_stream() -> Any:
    if log.handlers or logging.root.handlers or not log.propagate:
        return None
    handlers = log.parent.handlers if log.parent is not None else []
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if type(handler) is not logging.StreamHandler or not isinstance(handler.formatter,
                                                                     JsonFormatter) \
            or handler.level > logging.INFO or handler.filters or log.filters:
        return None
    return handler


def _write_line(handler: Any, message: str, fields: dict[str, Any], request_id: str) -> None:
    line = json.dumps({"ts": datetime.now(timezone.utc).isoformat(), "level": "INFO",
                       "logger": log.name, "msg": message, **fields, "request_id": request_id})
    with handler.lock:
        handler.stream.write(line + "\n")
        handler.flush()


_security = logging.getLogger("app.security")


def security_event(event: str, **fields: Any) -> None:
    """One line per security event (ids only, never a token or password)."""
    _security.warning("security event %s", event, extra={"event": event, **fields})
