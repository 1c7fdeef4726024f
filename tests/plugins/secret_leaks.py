"""The whole-run secret-leak check: every token and password a test sends or receives is
remembered (tests/secret_registry.py); at the end of the run no log line may contain one."""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from app.logs import JsonFormatter
from tests import secret_registry

# Log files of server processes (gunicorn) started during the run; read at the end.
SERVER_LOGS: list[Path] = []


class RecordingClient(FlaskClient):
    """The test client, noting every secret it sends or receives (see secret_registry)."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        secret_registry.remember_body(kwargs.get("data"))
        secret_registry.remember_body(kwargs.get("json"))
        response = super().open(*args, **kwargs)
        if response.is_json:
            secret_registry.remember_fields(response.get_json(silent=True))
        return response


def _recording(real_request: Any) -> Any:
    def request(self: requests.Session, method: str, url: str, **kwargs: Any) -> Any:
        secret_registry.remember_body(kwargs.get("data"))
        secret_registry.remember_body(kwargs.get("json"))
        response = real_request(self, method, url, **kwargs)
        try:
            secret_registry.remember_fields(response.json())
        except ValueError:
            pass
        return response
    return request


def leaked_secrets(log_lines: list[str], secrets: set[str]) -> list[str]:
    """The secrets that appear anywhere in the log lines."""
    text = "\n".join(log_lines)
    return sorted(s for s in secrets if s in text)


@pytest.fixture(scope="session", autouse=True)
def record_http_secrets() -> Iterator[None]:
    """Every requests call of the run (also in forked client processes, which inherit the
    patched class) notes the secrets it sends or receives; undone at the end of the run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.Session, "request", _recording(requests.Session.request))
        yield


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Capture every log line of the whole run; at the end none may hold a used secret."""
    os.environ[secret_registry.ENV] = str(tmp_path_factory.mktemp("secrets") / "used.jsonl")
    lines: list[str] = []
    formatter = JsonFormatter()

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    # On the `app` logger, not the root: Alembic's fileConfig replaces the root's handlers.
    handler = Capture(level=logging.DEBUG)
    logging.getLogger("app").addHandler(handler)
    yield lines
    logging.getLogger("app").removeHandler(handler)
    for log_file in SERVER_LOGS:
        lines.extend(log_file.read_text(errors="replace").splitlines())
    leaked = leaked_secrets(lines, secret_registry.recorded())
    assert not leaked, f"{len(leaked)} secrets appear in the logs, e.g. {leaked[0][:12]}..."
