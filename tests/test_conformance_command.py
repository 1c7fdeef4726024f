"""`baton-conformance`'s command line, without a deployment: its help, its usage errors, and
what it imports (nothing of the server). The checks themselves: test_conformance.py."""
from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "baton-conformance"
SERVER_SETTINGS = ("SECRET_KEY", "DATABASE_URL", "BATON_ENV", "TEST_DATABASE_URL")


def run_script(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, with no server settings in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_SETTINGS}
    return subprocess.run([str(SCRIPT), *args], input="", capture_output=True, text=True,
                          env=env, timeout=60)


def test_help_shows_password_stdin_as_required() -> None:
    result = run_script("--help")
    assert result.returncode == 0, result.stderr
    usage = result.stdout.split("\n\n")[0]
    assert "--password-stdin" in usage and "[--password-stdin]" not in usage
    required = result.stdout.split("required options:")[1]
    assert "--password-stdin" in required and "--tenant" in required


def test_missing_password_stdin_is_one_line() -> None:
    result = run_script("http://127.0.0.1:9", "--tenant", "t", "--username", "u")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "baton-conformance: --password-stdin is required: a password is never an argument"]


def test_other_missing_options_keep_argparse_usage() -> None:
    result = run_script("http://127.0.0.1:9", "--password-stdin")
    assert result.returncode == 2
    assert "the following arguments are required: --tenant, --username" in result.stderr


def test_entry_point_resolves_and_loads_nothing_of_the_server() -> None:
    (script,) = entry_points(group="console_scripts", name="baton-conformance")
    assert script.value == "app.conformance:main"
    probe = ("import sys; from importlib.metadata import entry_points; "
             "(ep,) = entry_points(group='console_scripts', name='baton-conformance'); "
             "assert callable(ep.load()); "
             "print(' '.join(m for m in ('config', 'flask', 'sqlalchemy', 'app.factory', "
             "'app.extensions') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, cwd=Path(__file__).resolve().parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
