"""The README's "Sign in with a second factor" blocks, verbatim, against a live gunicorn: the
curl scripts (enrol, confirm, sign in with the code, with a recovery code) and the Python."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta

import pyotp
import pytest

from app.extensions import db
from app.services.accounts import factors
from app.services.audit import events
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction
from tests import factories
from tests.helpers import PROJECT_ROOT
from tests.helpers import utcnow
from tests.test_first_hour import bare_env
from tests.test_first_hour import readme_blocks

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
HEADING = "Sign in with a second factor"


def _tenant(app, slug: str) -> None:
    with app.app_context():
        factories.make_tenant(slug)
        factories.make_user(slug, "demo", "demo password")


def _files(tmp_path, live_server: str, slug: str) -> dict:
    (tmp_path / "instance").mkdir()
    credentials = tmp_path / "instance" / "demo-credentials.json"
    credentials.write_text(json.dumps({"tenant": slug, "username": "demo",
                                       "password": "demo password", "base_url": live_server}))
    return {"BATON_TENANT": slug, "BATON_CREDENTIALS": str(credentials),
            "BATON_CURL_STATE": str(tmp_path / "instance" / "tokens.json"),
            "BATON_CURL_TOTP": str(tmp_path / "instance" / "curl-totp.json")}


def test_the_curl_flow_runs_verbatim(app, live_server, tmp_path):
    slug = "curl-mfa"
    _tenant(app, slug)
    env = bare_env(**_files(tmp_path, live_server, slug))
    (block,) = readme_blocks("sh", HEADING)
    lines = [line for line in block.splitlines() if line.strip()]
    outputs = []
    for line in lines:  # one command at a time, as a reader pastes them
        result = subprocess.run(["bash", "-c", line], cwd=PROJECT_ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
        outputs.append(result.stdout)
    assert "otpauth://totp/" in outputs[1]
    codes = json.loads(outputs[2])["recovery_codes"]
    assert len(codes) == 10
    assert json.loads(outputs[3])["recovery_codes_left"] == 10
    assert "A second factor is required" in outputs[4]
    tokens = json.loads((tmp_path / "instance" / "tokens.json").read_text())
    import jwt

    assert jwt.decode(tokens["access_token"], options={"verify_signature": False})["amr"] == [
        "pwd", "otp", "mfa"]
    # A recovery code instead, and the password grant's answer for this user now.
    recovery = subprocess.run(["bash", "examples/curl/signin.sh"], cwd=PROJECT_ROOT,
                              env={**env, "BATON_RECOVERY_CODE": codes[0]},
                              capture_output=True, text=True, timeout=60)
    assert recovery.returncode == 0, recovery.stderr
    login = subprocess.run(["bash", "examples/curl/login.sh"], cwd=PROJECT_ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert login.returncode == 1 and "second factor is required" in login.stderr


def test_the_python_flow_runs_verbatim(app, live_server, tmp_path):
    slug = "py-mfa"
    _tenant(app, slug)
    files = _files(tmp_path, live_server, slug)
    now = utcnow()
    with app.app_context():  # a confirmed factor, as mfa-enrol.sh and mfa-confirm.sh leave it
        with transaction():
            tenant = lookup_tenant(slug)
            enrolment = factors.start_totp(tenant, 1, "demo", None, now)
            factors.finish_totp(tenant, 1, enrolment.id,
                                pyotp.TOTP(enrolment.secret).at(now - timedelta(seconds=30)),
                                now, events.CLI)
        db.session.remove()
    (tmp_path / "instance" / "curl-totp.json").write_text(json.dumps(
        {"id": str(enrolment.id), "secret": enrolment.secret}))
    script = tmp_path / "signin.py"
    script.write_text(readme_blocks("python", HEADING)[0])
    env = bare_env(BATON_TENANT=slug, **{k: v for k, v in os.environ.items()
                                          if k == "BATON_TEST_SECRETS_FILE"})
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "signed in with ['pwd', 'otp', 'mfa']" in result.stdout
    assert files  # the credentials file carried the server's URL
