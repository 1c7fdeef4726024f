"""The README, followed as written: the Python client and the Production section."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import uuid

import click
import pytest
import requests
import sqlalchemy as sa
from flask_migrate import cli as flask_migrate_cli

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import tenants
from tests.helpers import PROJECT_ROOT
from tests.helpers import utcnow
from tests.plugins.live_server import free_port
from tests.plugins.live_server import gunicorn
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


def readme_blocks(language: str, heading: str | None = None) -> list[str]:
    """Every ```language block of README.md, or of its `## heading` section only."""
    text = README.read_text()
    if heading:
        text = text[text.index(f"\n## {heading}\n") + 1:]
        text = text[:text.find("\n## ")] if "\n## " in text else text
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


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
    # As `make run` writes it: the server's URL too (make run BIND=... moves it).
    (tmp_path / "instance" / "demo-credentials.json").write_text(json.dumps(
        {"tenant": slug, "username": "reader", "password": "reader password",
         "base_url": live_server}))
    script = tmp_path / "client.py"
    script.write_text(readme_block("Python client", "python"))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env=bare_env(BATON_TENANT=slug))
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


@pytest.mark.live
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_by_hand_runs(live_server, app, tmp_path) -> None:
    """The README's by-hand curl block, unchanged, against a live gunicorn: no placeholder
    to fill in; the server, tenant and password come from the demo credentials."""
    slug = "by-hand"
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings(slug, "By hand"), utcnow())
        users.create_user(slug, "walker", "walker password", utcnow())
        db.session.remove()
    (tmp_path / "instance").mkdir()
    (tmp_path / "instance" / "demo-credentials.json").write_text(json.dumps(
        {"tenant": slug, "username": "walker", "password": "walker password",
         "base_url": live_server}))
    (block,) = [b for b in readme_blocks("sh", "Try it with curl") if "curl -s" in b]
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=bare_env())
    assert result.returncode == 0, result.stderr
    login = json.loads((tmp_path / "instance" / "login.json").read_text())
    refreshed = json.loads((tmp_path / "instance" / "refreshed.json").read_text())
    assert refreshed["session_id"] == login["session_id"]
    assert '"username":"walker"' in result.stdout.replace(" ", "")  # userinfo
    assert '"keys"' in result.stdout and '"issuer"' in result.stdout


def _flask_commands(block: str) -> list[list[str]]:
    """The arguments of every `.venv/bin/flask --app wsgi ...` and `make flask ARGS="..."`
    in a shell block, as the shell would pass them."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        for separator in ("|", "&&", ";"):
            if separator in words:
                words = words[words.index(separator) + 1:]
        if ".venv/bin/flask" in words:
            start = words.index(".venv/bin/flask")
            assert words[start + 1:start + 3] == ["--app", "wsgi"], line
            commands.append(words[start + 3:])
        elif words[:2] == ["make", "flask"]:
            (args,) = [w.removeprefix("ARGS=") for w in words if w.startswith("ARGS=")]
            commands.append(shlex.split(args))
    return commands


def test_every_readme_flask_command_parses(app) -> None:
    """Pasted as written, each operator command is accepted by the CLI: no `[--option]`,
    no `a|b` alternatives, only options and values that exist."""
    commands = [c for block in readme_blocks("sh") for c in _flask_commands(block)]
    assert len(commands) > 15
    groups: dict[str, click.Group] = {"db": flask_migrate_cli.db}
    for args in commands:
        group = groups.get(args[0]) or app.cli.get_command(click.Context(app.cli), args[0])
        command, rest = group, args[1:]
        while isinstance(command, click.Group):
            sub = command.get_command(click.Context(command), rest[0])
            assert sub is not None, f"README: no command {rest[0]!r} in {args}"
            command, rest = sub, rest[1:]
        try:
            command.make_context(command.name, list(rest))  # parses and checks every value
        except click.ClickException as exc:
            pytest.fail(f"README: flask {' '.join(args)}: {exc.format_message()}")
    assert ["admin-keys", "create", "acme", "--name", "api-gateway", "--scope",
            "introspect"] in commands
    # Tenants and users are created once (Production); the operator section refers back.
    created = [tuple(c[:3]) for c in commands if c[1:2] == ["create"]
               and c[0] in ("tenants", "users")]
    assert len(created) == len(set(created)), created


def _make_run_lines(*args: str) -> list[str]:
    """The command lines `make run` would run (make -n), continuation lines joined."""
    result = subprocess.run(["make", "--no-print-directory", "-n", "run", *args],
                            cwd=PROJECT_ROOT, env=bare_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.replace("\\\n", " ").splitlines()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_bind_moves_server_and_issuer() -> None:
    """README: `make run BIND=127.0.0.1:8080`: gunicorn listens there, and the demo (whose
    credentials carry the URL to the curl scripts) and the server issue for it."""
    lines = _make_run_lines("BIND=127.0.0.1:8123")
    (demo,) = [line for line in lines if line.endswith(" demo")]
    (serve,) = [line for line in lines if "gunicorn" in line]
    assert "BATON_BASE_URL=http://127.0.0.1:8123 " in demo
    assert "BATON_BASE_URL=http://127.0.0.1:8123 " in serve
    assert re.search(r"gunicorn -c gunicorn.conf.py --bind 127\.0\.0\.1:8123 wsgi:app$", serve)
    (default,) = [line for line in _make_run_lines() if "gunicorn" in line]
    assert "--bind 127.0.0.1:8000 " in default
    assert "BATON_BASE_URL=http://127.0.0.1:8000 " in default
    assert "make run BIND=127.0.0.1:8080" in README.read_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None or shutil.which("curl") is None,
                    reason="make and curl are needed")
def test_make_run_on_another_port_serves_the_demo_there(fresh_database, tmp_path) -> None:
    """`make run BIND=...` for real, in a copy of the checkout (its own instance/, this
    checkout's .venv): the issuer is the new address, and the curl examples find it."""
    checkout = tmp_path / "baton"
    shutil.copytree(PROJECT_ROOT, checkout, ignore=IGNORED)  # copy2: mtimes kept, no reinstall
    (checkout / ".venv").symlink_to(PROJECT_ROOT / ".venv")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "make-run.log"
    SERVER_LOGS.append(log_path)
    env = bare_env(DATABASE_URL=fresh_database, SECRET_KEY="make-run-test-secret-" + "7" * 24)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(["make", "--no-print-directory", "run", f"BIND=127.0.0.1:{port}"],
                                cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_until_up(base, proc, log_path, timeout_s=180)
        metadata = requests.get(f"{base}/v1/tenants/demo/.well-known/oauth-authorization-server",
                                timeout=30).json()
        assert metadata["issuer"] == f"{base}/v1/tenants/demo"
        saved = json.loads((checkout / "instance" / "demo-credentials.json").read_text())
        assert saved["base_url"] == base
        login = subprocess.run(["bash", "examples/curl/login.sh"], cwd=checkout, env=bare_env(),
                               capture_output=True, text=True, timeout=60)
        assert login.returncode == 0, login.stderr
        assert "Logged in as demo" in login.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.live
def test_gunicorn_leaves_no_control_socket_to_share(database_url, tmp_path) -> None:
    """gunicorn 25+ opens a control socket at one path per user (~/.gunicorn/gunicorn.ctl or
    $XDG_RUNTIME_DIR/gunicorn.ctl): two servers on one machine (`make run` twice, the tests,
    a benchmark) would take it from each other and remove it at exit. Baton needs none."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    with gunicorn(database_url, tmp_path, workers=1,
                  env={"HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}):
        assert not [*home.rglob("*.ctl"), *runtime.rglob("*.ctl")]
