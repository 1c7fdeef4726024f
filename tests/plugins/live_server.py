"""A real gunicorn with several workers on the test database (`live_server`); every test
that uses it is marked `live`, so `make test-quick` can leave them out."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from flask import Flask

from tests.helpers import PROJECT_ROOT
from tests.plugins.secret_leaks import SERVER_LOGS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(base: str, proc: subprocess.Popen, log_path: Path,
                  timeout_s: float = 30) -> None:
    """Until `/readyz` answers 200; RuntimeError with the server's log if it exits or is late."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log_path.read_text()}")
        try:
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"not ready within {timeout_s} s:\n{log_path.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def gunicorn(database_url: str, log_dir: Path, *, workers: int = 4,
             env: dict[str, str] | None = None) -> Iterator[str]:
    """A gunicorn master of Baton (gunicorn.conf.py, test settings) on `database_url`;
    yields its base URL. Its output joins the whole-run secret-leak check."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = log_dir / f"gunicorn-{port}.log"
    SERVER_LOGS.append(log_path)
    server_env = {**os.environ, "BATON_ENV": "test", "BATON_BASE_URL": base,
                  "DATABASE_URL": database_url, "BATON_LOCK_TIMEOUT_MS": "2000",
                  "BATON_DB_POOL_SIZE": "2", **(env or {})}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--workers",
             str(workers), "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=PROJECT_ROOT, env=server_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(base, proc, log_path)
        yield base
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def live_server(app: Flask, database_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real gunicorn with 4 sync workers on the test database; yields its base URL."""
    with gunicorn(database_url, tmp_path_factory.mktemp("gunicorn")) as base:
        yield base


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `live` every test that starts (or shares) the gunicorn of `live_server`."""
    for item in items:
        if "live_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live)
