"""Fixtures in the flaskr style, on real PostgreSQL (TEST_DATABASE_URL or an embedded one)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import datetime
from datetime import timezone
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask_migrate import upgrade

import config
from app import create_app
from app.extensions import db
from app.services import tenants
from app.services import users
from tests.factories import TokenClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TABLES = "login_attempts, refresh_tokens, sessions, signing_keys, users, tenants"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    """The server under test: TEST_DATABASE_URL, else an embedded one removed at exit."""
    url = config.test_database_url()
    if url:
        return url
    from app.embedded_db import embedded_database_url

    pgdata = tmp_path_factory.mktemp("embedded") / "pgdata"
    return embedded_database_url(str(pgdata), cleanup_mode="delete")


def make_app(database_url: str, **overrides):
    return create_app(config.TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url, **overrides})


@pytest.fixture(scope="session")
def app(database_url):
    app = make_app(database_url)
    with app.app_context():
        upgrade()
        db.session.remove()
    return app


@pytest.fixture(autouse=True)
def clean_db(request):
    """Empty every table after each test that touched the database (real commits)."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))


@pytest.fixture
def ctx(app):
    """An app context whose session is removed afterwards."""
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def tenant(app) -> str:
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("acme", "Acme"), utcnow())
        db.session.remove()
    return "acme"


@pytest.fixture
def user(app, tenant) -> tuple[str, str]:
    with app.app_context():
        users.create_user(tenant, "alice", "correct horse", utcnow())
        db.session.remove()
    return "alice", "correct horse"


@pytest.fixture
def tokens(client, tenant, user) -> TokenClient:
    return TokenClient(client, tenant, *user)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(app, database_url, tmp_path_factory):
    """A real gunicorn with 4 sync workers on the test database; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("gunicorn") / "server.log"
    env = {
        **os.environ,
        "BATON_ENV": "test",
        "BATON_BASE_URL": base,
        "DATABASE_URL": database_url,
        "BATON_LOCK_TIMEOUT_MS": "2000",
        "BATON_DB_POOL_SIZE": "2",
    }
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--workers", "4",
             "--bind", f"127.0.0.1:{port}", "wsgi:app"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_up(base, proc, log_path)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_until_up(base: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()}")
        try:
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not become ready:\n{log_path.read_text()}")
