"""The README, followed as written: the Python client and the Production section."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid

import pytest
import requests
import sqlalchemy as sa

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import tenants
from tests.helpers import PROJECT_ROOT
from tests.helpers import utcnow
from tests.plugins.live_server import free_port
from tests.plugins.live_server import stop
from tests.plugins.live_server import wait_until_up
from tests.plugins.secret_leaks import SERVER_LOGS

README = PROJECT_ROOT / "README.md"
SETTINGS = ("BATON_ENV", "SECRET_KEY", "DATABASE_URL", "TEST_DATABASE_URL", "BATON_BASE_URL",
            "OAUTHLIB_INSECURE_TRANSPORT", "VIRTUAL_ENV", "PYTHONPATH")


def readme_block(heading: str, language: str) -> str:
    """The first ```language block after `## heading` in README.md."""
    text = README.read_text()
    section = text[text.index(f"\n## {heading}\n"):]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block under {heading}"
    return match.group(1)


def bare_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Baton setting: a new user's shell."""
    return {**{k: v for k, v in os.environ.items() if k not in SETTINGS}, **extra}


def test_json_sent_as_form_hints_at_content_type(client, tenant) -> None:
    answer = client.post(f"/v1/tenants/{tenant}/token", data='{"grant_type": "password"}',
                         content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"
    assert "Content-Type: application/json" in answer.get_json()["error_description"]


def test_form_sent_as_json_hints_at_content_type(client, tenant) -> None:
    answer = client.post(f"/v1/tenants/{tenant}/token", data="grant_type=password&username=a",
                         content_type="application/json")
    assert answer.status_code == 400
    assert "application/x-www-form-urlencoded" in answer.get_json()["error_description"]


@pytest.mark.live
def test_readme_python_client_runs(live_server, app, tmp_path) -> None:
    """The README's Python client block, unchanged, against a live gunicorn."""
    slug = "py-client"
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings(slug, "Python client"), utcnow())
        users.create_user(slug, "reader", "reader password", utcnow())
        db.session.remove()
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "demo-credentials.json").write_text(
        json.dumps({"tenant": slug, "username": "reader", "password": "reader password"}))
    script = tmp_path / "client.py"
    script.write_text(readme_block("Python client", "python"))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120,
                            env=bare_env(BATON_BASE_URL=live_server, BATON_TENANT=slug))
    assert result.returncode == 0, result.stderr
    assert "'username': 'reader'" in result.stdout
    assert "refreshed; new access token valid for" in result.stdout


def _substitute(block: str, pattern: str, replacement: str) -> str:
    changed, count = re.subn(pattern, replacement, block, flags=re.M)
    assert count == 1, f"README Production block: expected one line matching {pattern!r}"
    return changed


IGNORED = shutil.ignore_patterns(".venv", ".lock-venv", "instance", ".git", "__pycache__",
                                 ".pytest_cache", ".hypothesis", "*.egg-info", "build", "results")


@pytest.fixture
def fresh_database(database_url):
    """An empty database of its own on the test server, dropped afterwards."""
    url = sa.engine.make_url(database_url)
    name = f"baton_prod_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield url.set(drivername="postgresql", database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_readme_production_section_verbatim(fresh_database, tmp_path) -> None:
    """A copy of the checkout, the Production block as written (only the database URL, the
    public URL and the port are this machine's), then a login and a refresh."""
    checkout = tmp_path / "baton"
    shutil.copytree(PROJECT_ROOT, checkout, ignore=IGNORED)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    block = readme_block("Production", "sh")
    created = re.search(r"^echo '(.+)' \| \.venv/bin/flask --app wsgi users create (\S+) (\S+) "
                        r"--password-stdin$", block, re.M)
    assert created, "the Production block creates a user with --password-stdin"
    password, tenant, username = created.groups()
    block = _substitute(block, r"^export DATABASE_URL=.*$", f"export DATABASE_URL={fresh_database}")
    block = _substitute(block, r"^export BATON_BASE_URL=.*$", f"export BATON_BASE_URL={base}")
    block = _substitute(block, r"^(\.venv/bin/gunicorn .*)--bind 0\.0\.0\.0:8000(.*)$",
                        rf"exec \g<1>--bind 127.0.0.1:{port}\g<2>")
    log_path = tmp_path / "production.log"
    SERVER_LOGS.append(log_path)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", block], cwd=checkout,
                                env=bare_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_up(base, proc, log_path, timeout_s=600)  # includes a fresh venv install
        installed = subprocess.run([str(checkout / ".venv/bin/python"), "-c", "import pgserver"],
                                   capture_output=True)
        assert installed.returncode != 0, "the production install pulled in pgserver"
        dev = subprocess.run([".venv/bin/flask", "--app", "wsgi", "tenants", "list"],
                             cwd=checkout, env=bare_env(BATON_ENV="development"),
                             capture_output=True, text=True, timeout=60)
        assert dev.returncode == 3  # without pgserver, development needs DATABASE_URL
        assert dev.stderr.strip().splitlines() == [
            "baton: configuration error: no DATABASE_URL and no embedded PostgreSQL: set "
            "DATABASE_URL, or install the embedded one with `make install` "
            "(pip install -e '.[embedded]')"]
        token_url = f"{base}/v1/tenants/{tenant}/token"
        login = requests.post(token_url, timeout=30, data={
            "grant_type": "password", "username": username, "password": password})
        assert login.status_code == 200, login.text
        refreshed = requests.post(token_url, timeout=30, data={
            "grant_type": "refresh_token", "refresh_token": login.json()["refresh_token"]})
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["session_id"] == login.json()["session_id"]
    finally:
        stop(proc)
