"""The suite's own database (tests/plugins/database.py): where it lives, as the docs say, and
that another pytest on the machine cannot cut it off."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pgserver
import pytest
import sqlalchemy as sa

import config
from tests.helpers import PROJECT_ROOT
from tests.plugins.database import Database
from tests.plugins.database import EmbeddedDatabase


def _embedded(database: Database) -> EmbeddedDatabase:
    if not isinstance(database, EmbeddedDatabase):
        pytest.skip("TEST_DATABASE_URL is set: the suite runs no embedded PostgreSQL")
    return database


def _answers(url: str) -> None:
    """A new connection (the socket path walked again) and a query."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 10})
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_docs_say_where_the_suite_database_lives(database, tmp_path_factory) -> None:
    """In a temporary directory of the run (removed at exit), never under instance/."""
    readme = " ".join((PROJECT_ROOT / "README.md").read_text().split())
    operations = " ".join((PROJECT_ROOT / "docs" / "operations.md").read_text().split())
    assert ("`make test` (unless `TEST_DATABASE_URL` is set) starts an embedded PostgreSQL of "
            "its own in a temporary directory of the run and removes it at exit") in readme
    assert "The test suite uses neither" in operations
    pgdata = Path(_embedded(database).server.pgdata).resolve()
    assert (config.BASE_DIR / "instance") not in pgdata.parents
    assert tmp_path_factory.getbasetemp().resolve() in pgdata.parents


TRIVIAL_TEST = '''
def test_uses_the_default_temp_base(tmp_path):
    (tmp_path / "touched").write_text("yes")
'''


def test_another_pytest_on_the_machine_leaves_the_embedded_database_alone(database,
                                                                          tmp_path) -> None:
    """pytest's default temp base is shared by every pytest of the user (as root, the
    embedded PostgreSQL runs as another user), and each new run resets its mode: the run's
    own base (pytest_configure) keeps this run's database out of its reach. Not `slow`
    (about 2 s): it must run where the embedded database is, CI's first step included."""
    embedded = _embedded(database)
    _answers(embedded.url)
    (tmp_path / "test_trivial.py").write_text(TRIVIAL_TEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    other = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "test_trivial.py"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
    assert other.returncode == 0, other.stdout + other.stderr
    _answers(embedded.url)
    # What the outage tests and the cleanup at exit do: pg_ctl as the server's own user,
    # through the data directory's full path (status only: this run's servers keep going).
    status = pgserver.pg_ctl(["status"], pgdata=embedded.server.pgdata,
                             user=embedded.server.system_user)
    assert "server is running" in status
