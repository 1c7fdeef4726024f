"""`baton-conformance` (SPEC §12): exit 0 on a sound deployment, 1 on a broken one, 2 on
usage or connection errors. The broken one is a tiny server that forks every chain."""
from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from tests.test_rotation_concurrency import make_tenant
from tests.topology import conformance
from tests.topology import free_port

pytestmark = pytest.mark.live


def test_sound_deployment_passes(app, live_server):
    make_tenant(app, "conform", reuse_interval=10)
    result = conformance(live_server, "conform", "user0", "hunter2hunter2", "--processes", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 of 5 checks held" in result.stdout
    assert "parallel redemptions of one authorization code  ok" in result.stdout
    assert "BROKEN" not in result.stdout


def test_sound_deployment_passes_in_strict_mode(app, live_server):
    make_tenant(app, "conform-strict", reuse_interval=0)
    result = conformance(live_server, "conform-strict", "user0", "hunter2hunter2",
                         "--processes", "8", "--reuse-interval", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "strict mode" in result.stdout


class ForkingTokenServer(BaseHTTPRequestHandler):
    """Answers every grant with fresh tokens: chains fork, replays go unnoticed, a code
    redeems any number of times."""

    def do_POST(self):
        fields = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        if self.path.endswith("/token") and fields.get("password") not in (None, ["pw"]):
            status, body = 400, {"error": "invalid_grant"}
        elif self.path.endswith("/token"):  # codes too: every redemption works
            status, body = 200, {"access_token": secrets.token_urlsafe(),
                                 "refresh_token": secrets.token_urlsafe()}
        elif self.path.endswith("/authorize-challenge"):
            status, body = 200, {"authorization_code": secrets.token_urlsafe()}
        else:
            status, body = 200, {}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def broken_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ForkingTokenServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_broken_deployment_exits_1(broken_server):
    result = conformance(broken_server, "t", "u", "pw", "--processes", "4")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "BROKEN" in result.stdout
    assert "0 of 5 checks held" in result.stdout


def test_wrong_password_exits_2(broken_server):
    result = conformance(broken_server, "t", "u", "wrong")
    assert result.returncode == 2
    assert result.stderr.startswith("baton-conformance: login failed (400 invalid_grant)")
    assert len(result.stderr.splitlines()) == 1


def test_unreachable_deployment_exits_2():
    result = conformance(f"http://127.0.0.1:{free_port()}", "t", "u", "pw")
    assert result.returncode == 2
    assert "cannot reach" in result.stderr and len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("extra, fragment", [
    (("--processes", "1"), "--processes"),
    (("--reuse-interval", "301"), "--reuse-interval"),
    (("--processes", "many"), "invalid int value"),
])
def test_usage_errors_exit_2(extra, fragment):
    result = conformance("http://127.0.0.1:9", "t", "u", "pw", *extra)
    assert result.returncode == 2
    assert fragment in result.stderr


def test_bad_url_exits_2():
    result = conformance("ftp://example", "t", "u", "pw")
    assert result.returncode == 2
    assert "http://" in result.stderr


def test_a_tenant_without_the_password_grant_is_checked_through_codes(app, live_server):
    """The test user signs in through the challenge flow when the password grant is off."""
    from tests import factories

    with app.app_context():
        factories.make_tenant("conform-codes", password_grant=False)
        factories.make_user("conform-codes", "user0", "hunter2hunter2")
    result = conformance(live_server, "conform-codes", "user0", "hunter2hunter2",
                         "--processes", "4")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 of 5 checks held" in result.stdout
