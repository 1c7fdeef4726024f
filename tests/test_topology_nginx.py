"""Baton behind a real nginx running deploy/nginx.conf (docs/deployment.md, SPEC §4.1, §11).

gunicorn (4 sync workers, production settings, BATON_TRUSTED_PROXIES=1) behind nginx on
TLS with a certificate for the public name; clients connect to 127.0.0.1 and name
auth.example.com in SNI and Host, from source addresses of their choosing (127.0.0.2 and
127.0.0.3 are loopback too). Shown: a slow chunked body holds a gunicorn worker when sent
directly and none through nginx; throttles count the address nginx saw, whatever
X-Forwarded-For a client writes; neither Host nor X-Forwarded-Host chooses the issuer.
"""
from __future__ import annotations

import http.client
import json
import ssl
import statistics
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
import sqlalchemy as sa

import config
from app.extensions import db
from tests import factories
from tests import secret_registry
from tests.helpers import PASSWORD
from tests.plugins.live_server import free_port
from tests.topology import Nginx
from tests.topology import Workspace
from tests.topology import gunicorn
from tests.topology import nginx_site
from tests.topology import self_signed_certificate

pytestmark = [pytest.mark.slow, pytest.mark.live]
SERVER_NAME = "auth.example.com"  # the server_name of deploy/nginx.conf
PUBLIC_URL = f"https://{SERVER_NAME}"
WORKERS = 4
SLOW_CLIENTS = 8  # twice the workers
DRIBBLE_BYTES, DRIBBLE_PAUSE_S = 10, 0.5  # each slow body takes about 5 s
PRODUCTION = {  # what the README's production section sets, plus the proxy
    "BATON_ENV": "production", "SECRET_KEY": config.TestConfig.SECRET_KEY,
    "BATON_BASE_URL": PUBLIC_URL, "BATON_TRUSTED_PROXIES": "1",
    "BATON_ARGON2_MEMORY_KIB": "19456", "BATON_ARGON2_TIME_COST": "2",
    "BATON_ARGON2_PARALLELISM": "1",
}


class _TLS(http.client.HTTPSConnection):
    """TLS to 127.0.0.1 naming `sni` in the handshake (no DNS needed)."""

    def __init__(self, port: int, context: ssl.SSLContext, sni: str, source: str) -> None:
        super().__init__("127.0.0.1", port, context=context, source_address=(source, 0),
                         timeout=60)
        self.sni = sni

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.sni)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        data = json.loads(self.body)
        secret_registry.remember_fields(data)
        return data


@dataclass
class Edge:
    """The deployment's two doors: nginx (TLS, the public name) and gunicorn itself."""

    proxy_port: int
    direct_port: int
    context: ssl.SSLContext

    def connect(self, *, direct: bool = False, source: str = "127.0.0.1",
                sni: str = SERVER_NAME) -> http.client.HTTPConnection:
        if direct:
            return http.client.HTTPConnection("127.0.0.1", self.direct_port, timeout=60,
                                              source_address=(source, 0))
        return _TLS(self.proxy_port, self.context, sni, source)

    def request(self, method: str, path: str, *, form: dict | None = None,
                body: bytes | None = None, headers: dict | None = None,
                host: str = SERVER_NAME, **where: Any) -> Answer:
        headers = {"Host": host, **(headers or {})}
        if form is not None:
            secret_registry.remember_fields(form)
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn = self.connect(**where)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()},
                          response.read())
        finally:
            conn.close()

    def login(self, tenant: str, username: str, password: str = PASSWORD, **kw: Any) -> Answer:
        return self.request("POST", f"/v1/tenants/{tenant}/token", form={
            "grant_type": "password", "username": username, "password": password}, **kw)

    def refresh(self, tenant: str, token: str, **kw: Any) -> Answer:
        return self.request("POST", f"/v1/tenants/{tenant}/token", form={
            "grant_type": "refresh_token", "refresh_token": token}, **kw)


@pytest.fixture(scope="module")
def edge(app, database_url, tmp_path_factory):
    """gunicorn (production settings) behind nginx running deploy/nginx.conf."""
    ws = Workspace()
    proxy = None
    try:
        cert, key = self_signed_certificate(ws, SERVER_NAME)
        with gunicorn(database_url, tmp_path_factory.mktemp("proxied"), workers=WORKERS,
                      env=PRODUCTION) as base:
            direct_port = int(base.rsplit(":", 1)[1])
            proxy = Nginx(ws, nginx_site(direct_port, port := free_port(), cert, key), port,
                          tmp_path_factory.mktemp("nginx"))
            proxy.start()
            yield Edge(port, direct_port, ssl.create_default_context(cafile=str(cert)))
    finally:
        if proxy:
            proxy.stop()
        ws.cleanup()


def make_users(app, tenant: str, *usernames: str) -> None:
    with app.app_context():
        factories.make_tenant(tenant)
        for username in usernames:
            factories.make_user(tenant, username)


# -- slow clients ------------------------------------------------------------------------------

def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass
class Dribble:
    """One client sending its chunked body a byte at a time; its times and answer."""

    sent_all: float = 0.0
    status: int = 0
    error: str = ""


def dribble(edge: Edge, direct: bool, tenant: str, started: threading.Barrier,
            out: Dribble) -> None:
    try:
        conn = edge.connect(direct=direct)
        conn.putrequest("POST", f"/v1/tenants/{tenant}/token", skip_host=True,
                        skip_accept_encoding=True)
        for name, value in [("Host", SERVER_NAME), ("Transfer-Encoding", "chunked"),
                            ("Content-Type", "application/x-www-form-urlencoded")]:
            conn.putheader(name, value)
        conn.endheaders(_chunk(b"grant_type=refresh_token&refresh_token="))
        started.wait(30)
        for _ in range(DRIBBLE_BYTES):
            time.sleep(DRIBBLE_PAUSE_S)
            conn.send(_chunk(b"x"))
        conn.send(b"0\r\n\r\n")
        out.sent_all = time.monotonic()
        out.status = conn.getresponse().status
        conn.close()
    except Exception as exc:  # noqa: BLE001  (reported by the test)
        out.error = repr(exc)


def refreshes_during_slow_clients(edge: Edge, direct: bool, tenant: str,
                                  token: str) -> tuple[list[tuple[float, float, int]], float]:
    """SLOW_CLIENTS dribbling bodies while one client chains refreshes, each on a new
    connection, until every slow body is sent. Returns the refreshes (sent, answered,
    status) and when the first slow client finished sending its body."""
    started = threading.Barrier(SLOW_CLIENTS + 1)
    slow = [Dribble() for _ in range(SLOW_CLIENTS)]
    threads = [threading.Thread(target=dribble, args=(edge, direct, tenant, started, out))
               for out in slow]
    for thread in threads:
        thread.start()
    started.wait(30)
    time.sleep(DRIBBLE_PAUSE_S)  # every slow request has reached a worker (or the queue)
    refreshes = []
    while not refreshes or any(thread.is_alive() and not out.sent_all
                               for thread, out in zip(threads, slow)):
        sent = time.monotonic()
        answer = edge.refresh(tenant, token, direct=direct)
        refreshes.append((sent, time.monotonic(), answer.status))
        if answer.status != 200:
            break
        token = answer.json()["refresh_token"]
    for thread in threads:
        thread.join(60)
    assert [(out.status, out.error) for out in slow] == [(400, "")] * SLOW_CLIENTS
    return refreshes, min(out.sent_all for out in slow)


def test_slow_chunked_clients_hold_no_worker_behind_nginx(app, edge, capsys):
    make_users(app, "slow", "direct", "proxied")
    figures = {}
    for name, direct in [("direct", True), ("proxied", False)]:
        first = edge.login("slow", name, direct=direct)
        assert first.status == 200, first.body
        refreshes, first_body_done = refreshes_during_slow_clients(
            edge, direct, "slow", first.json()["refresh_token"])
        assert {status for _, _, status in refreshes} == {200}
        while_sending = [done - sent for sent, done, _ in refreshes if done < first_body_done]
        figures[name] = (while_sending, refreshes[0][1] - refreshes[0][0])
    # Straight to gunicorn, the slow bodies hold every worker: no refresh is answered
    # before one of them is complete (this is what makes the next assertion mean something).
    assert figures["direct"][0] == []
    # Through nginx, refreshes are answered while every slow client is still sending.
    assert len(figures["proxied"][0]) >= 3
    latencies = figures["proxied"][0]
    with capsys.disabled():
        print(f"\n[nginx] {SLOW_CLIENTS} clients dribbling a chunked body "
              f"({DRIBBLE_BYTES} bytes, one every {DRIBBLE_PAUSE_S} s) to {WORKERS} workers: "
              f"direct, 0 refreshes answered while they sent, the first waited "
              f"{figures['direct'][1]:.2f} s; through nginx, {len(latencies)} refreshes "
              f"answered meanwhile, median {statistics.median(latencies) * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")


# -- client addresses --------------------------------------------------------------------------

def _counters(app, tenant: str) -> tuple[dict[str, int], dict[str, int]]:
    """The throttle counters: per (address, username) of the tenant, and per address."""
    with app.app_context():
        per_user = dict(db.session.execute(sa.text(
            "SELECT key, attempts FROM login_attempts a JOIN tenants t ON t.id = a.tenant_id"
            " WHERE t.slug = :slug AND kind = 'user_addr'"), {"slug": tenant}).all())
        per_address = dict(db.session.execute(sa.text(
            "SELECT address, attempts FROM login_address_attempts")).all())
        db.session.remove()
    return per_user, per_address


def test_throttles_count_the_address_nginx_saw(app, edge):
    make_users(app, "thr", "alice")
    # Five failures from 127.0.0.2, each claiming another X-Forwarded-For: still one
    # address to Baton, so the sixth is throttled (SPEC §11: 5 per tenant, user, address;
    # the refused attempt is not counted).
    for i in range(5):
        answer = edge.login("thr", "alice", "wrong password", source="127.0.0.2",
                            headers={"X-Forwarded-For": f"198.51.100.{i}"})
        assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")
    answer = edge.login("thr", "alice", "wrong password", source="127.0.0.2",
                        headers={"X-Forwarded-For": "198.51.100.99"})
    assert (answer.status, answer.json()["error"]) == (429, "slow_down")
    assert int(answer.headers["retry-after"]) > 0
    # 127.0.0.3 claiming to be 127.0.0.2 is counted as itself, and is not throttled.
    answer = edge.login("thr", "alice", "wrong password", source="127.0.0.3",
                        headers={"X-Forwarded-For": "127.0.0.2"})
    assert (answer.status, answer.json()["error"]) == (400, "invalid_grant")
    assert _counters(app, "thr") == ({"127.0.0.2 alice": 5, "127.0.0.3 alice": 1},
                                     {"127.0.0.2": 5, "127.0.0.3": 1})
    assert edge.login("thr", "alice", source="127.0.0.3").status == 200

    # Why gunicorn must be reachable by the proxy only: it trusts one X-Forwarded-For hop.
    edge.login("thr", "alice", "wrong password", direct=True,
               headers={"X-Forwarded-For": "203.0.113.7"})
    assert "203.0.113.7" in _counters(app, "thr")[1]


# -- the issuer --------------------------------------------------------------------------------

FORGED = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http",
          "X-Forwarded-Port": "8443", "X-Forwarded-Prefix": "/evil",
          "Forwarded": "host=evil.example;proto=http"}


def test_host_headers_cannot_choose_the_issuer(app, edge):
    make_users(app, "iss", "alice")
    issuer = f"{PUBLIC_URL}/v1/tenants/iss"
    path = "/v1/tenants/iss/.well-known/oauth-authorization-server"
    plain = edge.request("GET", path)
    assert plain.status == 200 and plain.json()["issuer"] == issuer
    assert all(value.startswith(PUBLIC_URL) for key, value in plain.json().items()
               if key.endswith("_endpoint") or key == "jwks_uri")
    # Forwarding headers written by the client are dropped by nginx: the same document.
    assert edge.request("GET", path, headers=FORGED).json() == plain.json()
    login = edge.login("iss", "alice", headers=FORGED)
    assert login.status == 200
    claims = jwt.decode(login.json()["access_token"], options={"verify_signature": False})
    assert claims["iss"] == issuer

    # Another name in Host (or in an absolute request line) is closed unanswered by the
    # default server, and a handshake naming another host is refused.
    with pytest.raises(http.client.RemoteDisconnected):
        edge.request("GET", path, host="evil.example")
    with pytest.raises(http.client.RemoteDisconnected):
        edge.request("GET", f"http://evil.example{path}")
    with pytest.raises(ssl.SSLError):
        edge.request("GET", path, sni="evil.example")
    # Baton itself ignores them too (production: the issuer is BATON_BASE_URL).
    direct = edge.request("GET", path, host="evil.example", headers=FORGED, direct=True)
    assert direct.json() == plain.json()


# -- nginx's own answers -----------------------------------------------------------------------

def test_the_proxy_answers_in_batons_shape(app, edge):
    make_users(app, "shape", "alice")
    login = edge.login("shape", "alice")
    assert login.status == 200
    assert login.headers["cache-control"] == "no-store" and login.headers["pragma"] == "no-cache"
    assert login.headers["strict-transport-security"].startswith("max-age=")
    big = b"grant_type=password&username=alice&password=" + b"x" * 17_000
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = edge.request("POST", "/v1/tenants/shape/token", body=big, headers=form)
    baton = edge.request("POST", "/v1/tenants/shape/token", body=big, headers=form,
                         direct=True)
    assert (refused.status, baton.status) == (413, 413)  # refused by nginx, as by Baton
    assert refused.json() == baton.json()
    # /metrics is for the scraper on each app server, never through the public door.
    assert edge.request("GET", "/metrics").status == 404
    assert edge.request("GET", "/metrics", direct=True).status == 200


def test_no_app_server_answers_503_in_batons_shape(tmp_path):
    """Every upstream down: nginx's 502 becomes Baton's 503 with Retry-After."""
    ws = Workspace()
    proxy = None
    try:
        cert, key = self_signed_certificate(ws, SERVER_NAME)
        proxy = Nginx(ws, nginx_site(free_port(), port := free_port(), cert, key), port,
                      tmp_path)
        proxy.start()
        edge = Edge(port, 0, ssl.create_default_context(cafile=str(cert)))
        answer = edge.refresh("any", "no-token-here")
        assert answer.status == 503 and answer.headers["retry-after"] == "1"
        assert answer.json()["error"] == "temporarily_unavailable"
    finally:
        if proxy:
            proxy.stop()
        ws.cleanup()
