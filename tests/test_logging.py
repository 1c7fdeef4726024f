"""JSON log lines (app/logs.py) and the suite's own secret-leak check: it catches a logged
token and sees the traffic of forked client processes."""
from __future__ import annotations

import json
import logging
from datetime import datetime

import requests
from flask import Flask
from flask import g

from app.crypto import new_refresh_token
from app.logs import JsonFormatter
from tests import secret_registry
from tests.parallel import run_together
from tests.plugins.secret_leaks import leaked_secrets


def record(msg: str = "hello %s", *args: object, exc_info: object = None,
           **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("app.test")
    return logger.makeRecord("app.test", logging.WARNING, __file__, 1, msg, args or ("world",),
                             exc_info, extra=extra)


def test_one_json_object_with_the_fields_and_extras() -> None:
    entry = json.loads(JsonFormatter().format(record(event="login", session_id="s-1")))
    assert entry["level"] == "WARNING" and entry["logger"] == "app.test"
    assert entry["msg"] == "hello world"
    assert entry["event"] == "login" and entry["session_id"] == "s-1"
    assert datetime.fromisoformat(entry["ts"]).utcoffset() is not None
    assert not {"levelname", "name", "message", "args", "pathname", "exc_info"} & set(entry)


def test_exception_is_rendered_as_exc() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        entry = json.loads(JsonFormatter().format(record(exc_info=sys.exc_info())))
    assert "ValueError: boom" in entry["exc"]


def test_request_id_inside_a_request() -> None:
    app = Flask(__name__)
    with app.test_request_context():
        g.request_id = "req-42"
        entry = json.loads(JsonFormatter().format(record()))
    assert entry["request_id"] == "req-42"
    assert "request_id" not in json.loads(JsonFormatter().format(record()))


def test_unserializable_extras_are_text() -> None:
    entry = json.loads(JsonFormatter().format(record(kid=object())))
    assert entry["kid"].startswith("<object object")


def test_the_leak_check_catches_a_logged_token() -> None:
    token = new_refresh_token()
    clean = [JsonFormatter().format(record(event="login", session_id="s-1"))]
    dirty = clean + [JsonFormatter().format(record("refresh %s", token))]
    assert leaked_secrets(clean, {token}) == []
    assert leaked_secrets(dirty, {token}) == [token]
    extra = [JsonFormatter().format(record(event="rotate", refresh_token=token))]
    assert leaked_secrets(extra, {token}) == [token]


def _post_from_a_child(url: str) -> int:
    try:
        requests.post(url, data={"password": "forked-client-password"}, timeout=2)
    except requests.RequestException:
        pass  # nothing listens: only what was sent matters
    return 0


def test_the_leak_check_sees_forked_clients_traffic() -> None:
    run_together(_post_from_a_child, [("http://127.0.0.1:9/token",)] * 2)
    assert "forked-client-password" in secret_registry.recorded()


def test_the_request_line_is_the_same_whichever_way_it_is_written(app: Flask,
                                                                  monkeypatch) -> None:
    """In production (the JSON handler the only one) the request line is written to the
    stream directly; with any other handler (pytest's capture, an operator's config)
    through the logging module. Both write the same object, byte for byte but the clock."""
    import io

    handler = next(h for h in logging.getLogger("app").handlers
                   if isinstance(h.formatter, JsonFormatter))
    buffer = io.StringIO()
    monkeypatch.setattr(handler, "stream", buffer)
    client = app.test_client()
    monkeypatch.setattr(logging.root, "handlers", [])  # as under gunicorn
    client.get("/healthz", headers={"X-Request-ID": "same-id"})
    monkeypatch.setattr(logging.root, "handlers", [logging.NullHandler()])
    client.get("/healthz", headers={"X-Request-ID": "same-id"})
    direct, through = [json.loads(line) for line in buffer.getvalue().splitlines()
                       if '"event": "request"' in line]
    for entry in (direct, through):
        entry.pop("ts"), entry.pop("duration_ms")
    assert list(direct.items()) == list(through.items())
    assert direct["request_id"] == "same-id" and direct["msg"] == "GET /healthz 200"
