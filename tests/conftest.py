"""Fixtures in the flaskr style, on real PostgreSQL (TEST_DATABASE_URL or an embedded one)."""
from __future__ import annotations

import logging
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
from flask.testing import FlaskClient
from flask_migrate import upgrade

import config
from app import create_app
from app.extensions import db
from app.logs import JsonFormatter
from app.services import tenant_cache
from app.services import tenants
from app.services import users
from tests import secret_registry
from tests.factories import TokenClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TABLES = ("events, webhooks, admin_keys, login_address_attempts, login_attempts, refresh_tokens, "
          "sessions, signing_keys, "
          "users, tenants")


class RecordingClient(FlaskClient):
    """The test client, noting every secret it sends or receives (see secret_registry)."""

    def open(self, *args, **kwargs):
        secret_registry.remember_body(kwargs.get("data"))
        secret_registry.remember_body(kwargs.get("json"))
        response = super().open(*args, **kwargs)
        if response.is_json:
            secret_registry.remember_fields(response.get_json(silent=True))
        return response


_real_request = requests.Session.request


def _recording_request(self, method, url, **kwargs):
    secret_registry.remember_body(kwargs.get("data"))
    secret_registry.remember_body(kwargs.get("json"))
    response = _real_request(self, method, url, **kwargs)
    try:
        secret_registry.remember_fields(response.json())
    except ValueError:
        pass
    return response


requests.Session.request = _recording_request  # also in forked client processes


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs(tmp_path_factory):
    """Capture every log line of the whole run; at the end none may hold a used secret."""
    os.environ[secret_registry.ENV] = str(tmp_path_factory.mktemp("secrets") / "used.jsonl")
    lines: list[str] = []
    formatter = JsonFormatter()

    class Capture(logging.Handler):
        def emit(self, record):
            lines.append(formatter.format(record))

    # On the `app` logger, not the root: Alembic's fileConfig replaces the root's handlers.
    handler = Capture(level=logging.DEBUG)
    logging.getLogger("app").addHandler(handler)
    yield lines
    logging.getLogger("app").removeHandler(handler)
    for log_file in SERVER_LOGS:
        lines.extend(log_file.read_text(errors="replace").splitlines())
    text = "\n".join(lines)
    leaked = sorted(s for s in secret_registry.recorded() if s in text)
    assert not leaked, f"{len(leaked)} secrets appear in the logs, e.g. {leaked[0][:12]}..."


SERVER_LOGS: list[Path] = []


class EmbeddedDatabase:
    """The embedded server of a test run, with stop/start for the outage tests."""

    def __init__(self, pgdata: Path) -> None:
        from app.embedded_db import embedded_database_url

        self.url = embedded_database_url(str(pgdata), cleanup_mode="delete")
        import pgserver

        self.server = pgserver.get_server(pgdata)

    def stop(self) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,
               user=self.server.system_user)

    def start(self) -> None:
        with self.server._lock:
            self.server.ensure_postgres_running()


class ServerDatabase:
    """A database on a PostgreSQL server: an outage is refusing and cutting its connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = sa.engine.make_url(url)
        self.name = parsed.database
        self.admin = sa.create_engine(parsed.set(database="postgres"),
                                      isolation_level="AUTOCOMMIT")

    def stop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                 " WHERE datname = :db AND pid <> pg_backend_pid()"),
                         {"db": self.name})

    def start(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))


@pytest.fixture(scope="session")
def database(tmp_path_factory):
    """TEST_DATABASE_URL, else an embedded PostgreSQL removed at exit."""
    url = config.test_database_url()
    if url:
        return ServerDatabase(url)
    return EmbeddedDatabase(tmp_path_factory.mktemp("embedded") / "pgdata")


@pytest.fixture(scope="session")
def database_url(database) -> str:
    return database.url


def make_app(database_url: str, **overrides):
    # The test process pings pooled connections, since the outage tests cut them; the
    # gunicorn under test runs the production setting (no pre-ping, recycle on error).
    app = create_app(config.TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url,
                                         "DB_PRE_PING": True, **overrides})
    app.test_client_class = RecordingClient
    return app


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
        tenant_cache.forget()  # identities restart, so a cached slug could name another tenant
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
    SERVER_LOGS.append(log_path)
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


@pytest.fixture
def admin_key(app, tenant) -> str:
    """A fresh `admin`-scope key of the acme tenant."""
    from app.services import admin_keys

    with app.app_context():
        _, key = admin_keys.create_key(tenant, "tests", "admin", utcnow())
        db.session.remove()
    secret_registry.remember(key)
    return key


@pytest.fixture
def admin(client, admin_key):
    """The Flask test client with the admin key's Authorization header."""
    from tests.factories import AdminClient

    return AdminClient(client, "acme", admin_key)
