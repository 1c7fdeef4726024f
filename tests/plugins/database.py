"""The test database (TEST_DATABASE_URL or an embedded PostgreSQL), the app on it, and the
flaskr-style fixtures: app, client, runner, ctx; every table emptied after each test."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Protocol

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask.testing import FlaskCliRunner
from flask_migrate import upgrade

import config
from app import create_app
from app.extensions import db
from app.services.tenancy import lookup as tenant_lookup
from tests.plugins.secret_leaks import RecordingClient

# Children before parents.
TABLES = ("events", "webhooks", "console_sessions", "admin_keys", "login_address_attempts",
          "login_attempts", "authorization_codes", "challenge_sessions", "recovery_codes",
          "factors", "refresh_tokens", "sessions", "signing_keys", "users", "tenants")


def pytest_configure(config: pytest.Config) -> None:
    """A temp base of this run's own, unless --basetemp names one.

    pytest's default base (/tmp/pytest-of-USER) is shared by every pytest on the machine, and
    each new run resets its mode; the embedded PostgreSQL, which runs as another user when the
    suite runs as root, then loses its way to its socket directory under it. Removed at exit,
    after the embedded server (registered later, so stopped earlier) is gone.
    """
    if config.option.basetemp is None and not hasattr(config, "workerinput"):
        base = tempfile.mkdtemp(prefix="baton-pytest-")
        config.option.basetemp = base
        atexit.register(shutil.rmtree, base, ignore_errors=True)


class Database(Protocol):
    """What the outage tests need of a test database: its URL, and stop/start."""

    url: str

    def stop(self) -> None: ...

    def start(self) -> None: ...


class EmbeddedDatabase:
    """The embedded server of a test run, with stop/start for the outage tests."""

    def __init__(self, pgdata: Path) -> None:
        import pgserver

        from app.embedded_db import embedded_database_url

        self.url = embedded_database_url(str(pgdata), cleanup_mode="delete")
        self.server = pgserver.get_server(pgdata)

    def stop(self) -> None:
        import pgserver

        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,
                        user=self.server.system_user)

    def start(self) -> None:
        # pgserver has no public restart: ensure_postgres_running is public but documents
        # that it runs under the server's lock, which is private. The one private use.
        with self.server._lock:
            self.server.ensure_postgres_running()


# Every connection this run opens (the app, its gunicorns, CLI subprocesses: libpq reads
# PGAPPNAME from the environment they inherit) carries this name, so an outage cuts this run's
# own connections only, never another client's of the same server.
RUN_APPLICATION_NAME = f"baton-tests-{os.getpid()}"


class ServerDatabase:
    """A database on a PostgreSQL server: an outage is refusing and cutting its connections."""

    def __init__(self, url: str) -> None:
        self.url = url
        os.environ["PGAPPNAME"] = RUN_APPLICATION_NAME
        parsed = sa.engine.make_url(url)
        self.name = parsed.database
        self.admin = sa.create_engine(parsed.set(database="postgres"),
                                      isolation_level="AUTOCOMMIT")

    def stop(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                                 " WHERE datname = :db AND application_name = :name"
                                 " AND pid <> pg_backend_pid()"),
                         {"db": self.name, "name": RUN_APPLICATION_NAME})

    def start(self) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """TEST_DATABASE_URL, else an embedded PostgreSQL removed at exit."""
    url = config.test_database_url()
    if url:
        return ServerDatabase(url)
    return EmbeddedDatabase(tmp_path_factory.mktemp("embedded") / "pgdata")


@pytest.fixture(scope="session")
def database_url(database: Database) -> str:
    return database.url


def make_app(database_url: str, **overrides: Any) -> Flask:
    # The test process pings pooled connections, since the outage tests cut them; the
    # gunicorn under test runs the production setting (no pre-ping, recycle on error).
    app = create_app(config.TestConfig, {"SQLALCHEMY_DATABASE_URI": database_url,
                                         "DB_PRE_PING": True, **overrides})
    app.test_client_class = RecordingClient
    return app


@pytest.fixture(scope="session")
def app(database_url: str) -> Flask:
    app = make_app(database_url)
    with app.app_context():
        upgrade()
        db.session.remove()
    return app


_SEQUENCES = sa.text(
    "SELECT pg_get_serial_sequence(format('%I', table_name), column_name)"
    " FROM information_schema.columns WHERE table_schema = current_schema()"
    " AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')")


_sequences: list[str] = []  # of the identity columns, looked up once per run


@pytest.fixture(autouse=True)
def clean_db(request: pytest.FixtureRequest) -> Iterator[None]:
    """Empty every table after each test that touched the database (real commits), and
    restart the identities. DELETE without waiting for the WAL flush rather than TRUNCATE,
    which rewrites every table's files: a third of the quick tier's time went to it."""
    yield
    if "app" not in request.fixturenames:
        return
    app = request.getfixturevalue("app")
    with app.app_context():
        tenant_lookup.forget()  # identities restart, so a cached slug could name another tenant
        db.session.remove()
        with db.engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
            for table in TABLES:
                conn.execute(sa.text(f"DELETE FROM {table}"))
            if not _sequences:
                _sequences.extend(n for n in conn.execute(_SEQUENCES).scalars() if n)
            for sequence in _sequences:
                conn.execute(sa.text("SELECT setval(:seq, 1, false)"), {"seq": sequence})


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    """An app context whose session is removed afterwards."""
    with app.app_context():
        yield
        db.session.remove()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()
