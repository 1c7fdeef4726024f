"""The operator's first hour: commands as the README writes them, and what a mistake says."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

import config
from app import create_app
from app.database.faults import driver_reason
from app.database.faults import server_address
from tests.helpers import PROJECT_ROOT
from tests.plugins.live_server import free_port

FLASK = [sys.executable, "-m", "flask", "--app", "wsgi"]


def run_flask(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*FLASK, *args], cwd=PROJECT_ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "DATABASE_URL", "BATON_ENV", "TEST_DATABASE_URL")}
    return {**env, **extra}


def _cli_against(url: str, args: list[str]):
    app = create_app(config.TestConfig, {"SQLALCHEMY_DATABASE_URI": url})
    return app.test_cli_runner().invoke(args=args)


def _one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def test_missing_database_is_named(database_url) -> None:
    url = sa.engine.make_url(database_url).set(database="baton_no_such_database")
    line = _one_error_line(_cli_against(url.render_as_string(hide_password=False),
                                        ["tenants", "list"]))
    assert "does not exist" in line and "baton_no_such_database" in line
    assert "temporarily unavailable" not in line


def test_refused_connection_is_named() -> None:
    url = f"postgresql+psycopg2://baton@127.0.0.1:{free_port()}/baton"
    line = _one_error_line(_cli_against(url, ["users", "disable", "acme", "alice"]))
    assert "connection refused" in line and "127.0.0.1" in line


def test_failed_authentication_is_named(database_url) -> None:
    url = sa.engine.make_url(database_url).set(username="baton_no_such_role", password="x")
    line = _one_error_line(_cli_against(url.render_as_string(hide_password=False),
                                        ["tokens", "purge", "--dry-run"]))
    assert 'role "baton_no_such_role" does not exist' in line
    assert "x@" not in line  # the URL's password is never echoed


def test_http_answer_stays_terse(database_url) -> None:
    """The reason is for the operator; an HTTP client still gets the generic 503."""
    url = sa.engine.make_url(database_url).set(database="baton_no_such_database")
    app = create_app(config.TestConfig,
                     {"SQLALCHEMY_DATABASE_URI": url.render_as_string(hide_password=False)})
    answer = app.test_client().post("/v1/tenants/acme/token",
                                    data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert answer.status_code == 503
    assert "does not exist" not in answer.get_data(as_text=True)


def test_piped_password_without_flag_is_refused_cleanly(app, tenant, database_url) -> None:
    env = clean_env(BATON_ENV="test", DATABASE_URL=database_url)
    result = run_flask(["users", "create", tenant, "bob"], env, stdin="s3cret password\n")
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: standard input is not a terminal: pass "
                                     "--password-stdin to read the password from it")
    assert "Warning" not in result.stderr + result.stdout


def test_configuration_error_exit_code_matches_readme() -> None:
    """README: a missing production setting prints one `baton: configuration error` line, exit 3."""
    result = run_flask(["tenants", "list"], clean_env())
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("baton: configuration error: SECRET_KEY")
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "`baton: configuration error: …` line and exits 3" in readme
    assert "one `Error: …` line on stderr and exits 1" in readme


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_flask_runs_operator_commands(app, tenant, database_url) -> None:
    """The README's form next to `make run`: the same settings as the server it started."""
    # With DATABASE_URL, development needs a secret of its own (README, "make run").
    env = clean_env(DATABASE_URL=database_url, SECRET_KEY="make-flask-test-secret-0123456789abcdef")
    result = subprocess.run(["make", "--no-print-directory", "flask", "ARGS=tenants list"],
                            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert tenant in result.stdout
    assert 'make flask ARGS="tenants list"' in (PROJECT_ROOT / "README.md").read_text()


def test_db_upgrade_against_missing_database_is_one_line(database_url) -> None:
    """The Production section's first database command, with a mistyped database name."""
    url = sa.engine.make_url(database_url).set(database="baton_no_such_database")
    env = clean_env(BATON_ENV="test", DATABASE_URL=url.render_as_string(hide_password=False))
    result = run_flask(["db", "upgrade"], env)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"Error: cannot use database 'baton_no_such_database' at "
                     f"{server_address(url)}: database \"baton_no_such_database\" does not exist"]


# -- a real `flask --app wsgi` run: stderr is exactly one line, whatever the database URL --

URL_PASSWORD = "url-password-7f3a"  # must never be echoed
PRODUCTION = {"BATON_ENV": "production", "SECRET_KEY": "operator-test-secret-" + "9" * 24,
              "BATON_BASE_URL": "https://auth.example.com"}


def _stderr_line(result: subprocess.CompletedProcess, prefix: str) -> str:
    """The one line on stderr of a failed command (and no password in it)."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    assert URL_PASSWORD not in result.stderr + result.stdout
    return lines[0]


@pytest.mark.parametrize("settings", [{"BATON_ENV": "test"}, PRODUCTION],
                         ids=["test", "production"])
def test_refused_connection_is_one_line_in_a_real_run(settings) -> None:
    """The reason only: the unit of work's JSON log line about the outage stays out."""
    url = f"postgresql://baton:{URL_PASSWORD}@127.0.0.1:{free_port()}/baton"
    result = run_flask(["tenants", "list"], clean_env(**settings, DATABASE_URL=url))
    line = _stderr_line(result, "Error: ")
    assert result.returncode == 1
    assert "127.0.0.1" in line and "connection refused" in line


@pytest.mark.parametrize("url, reason", [
    (f"mysql://baton:{URL_PASSWORD}@db.internal/baton",
     "DATABASE_URL must start with postgresql:// (Baton runs on PostgreSQL through "
     "psycopg2), not mysql://"),
    (f"baton:{URL_PASSWORD}@db.internal/baton", "DATABASE_URL must be a URL like "
     "postgresql://user:password@host:5432/dbname: it has no scheme"),
    ("db.internal/baton", "it has no scheme"),
    (f"postgresql://baton:{URL_PASSWORD}@db.internal:port/baton", "is the port a number"),
    (f"postgresql://baton:{URL_PASSWORD}@db.internal/baton?ssl_mode=require",
     'invalid connection option "ssl_mode"'),
], ids=["mysql", "no-scheme-password", "no-scheme", "bad-port", "unknown-option"])
@pytest.mark.parametrize("settings", [{"BATON_ENV": "test"}, PRODUCTION],
                         ids=["test", "production"])
def test_unusable_database_url_is_one_configuration_line(url, reason, settings) -> None:
    result = run_flask(["tenants", "list"], clean_env(**settings, DATABASE_URL=url))
    line = _stderr_line(result, "baton: configuration error: DATABASE_URL")
    assert result.returncode == 3
    assert reason in line


@pytest.mark.parametrize("command", [["tenants", "list"], ["db", "upgrade"]],
                         ids=["tenants-list", "db-upgrade"])
def test_bad_connection_option_value_is_named(database_url, command) -> None:
    """libpq's own reason (here an sslmode it does not know), not just `OperationalError`."""
    url = sa.engine.make_url(database_url).update_query_dict({"sslmode": "bogus"})
    env = clean_env(BATON_ENV="test", DATABASE_URL=url.render_as_string(hide_password=False))
    line = _stderr_line(run_flask(command, env), "Error: ")
    assert line.endswith('invalid sslmode value: "bogus"'), line


def test_driver_reason_never_holds_the_password() -> None:
    text = ('connection to server at "db" (10.0.0.5), port 5432 failed: missing "=" after '
            f'"{URL_PASSWORD}" in connection info string\n\tmore detail\n')
    assert driver_reason(text, URL_PASSWORD) == ('missing "=" after "***" in connection info '
                                                 'string')


@pytest.mark.slow
def test_deliverer_daemon_still_logs_that_it_waits_for_the_database() -> None:
    """`events deliver` without --once waits out an outage: its log is the only trace."""
    url = f"postgresql://baton@127.0.0.1:{free_port()}/baton"
    with pytest.raises(subprocess.TimeoutExpired) as ran:
        subprocess.run([*FLASK, "events", "deliver"], cwd=PROJECT_ROOT, capture_output=True,
                       env=clean_env(BATON_ENV="test", DATABASE_URL=url), timeout=10)
    stderr = (ran.value.stderr or b"").decode()
    assert '"msg": "database unavailable' in stderr, stderr
