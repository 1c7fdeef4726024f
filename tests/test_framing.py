"""Malformed HTTP framing from a raw socket, against the real gunicorn (SPEC §4.1)."""
from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest


def raw_request(base: str, head: str, body: bytes) -> tuple[int, dict, bytes]:
    """Send bytes exactly as given; returns status, headers and body of the answer."""
    url = urlsplit(base)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head_bytes, _, payload = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, payload


def chunked_head(path: str, host: str) -> str:
    return (f"POST {path} HTTP/1.1\nHost: {host}\nConnection: close\n"
            "Content-Type: application/x-www-form-urlencoded\nTransfer-Encoding: chunked\n")


@pytest.mark.parametrize("body", [
    b"zz\r\ngrant_type=password\r\n0\r\n\r\n",  # chunk size not hex
    b"5\r\ngrant_type=password\r\n0\r\n\r\n",  # chunk longer than its size line says
    b"-5\r\nabcde\r\n0\r\n\r\n",  # negative chunk size
])
def test_malformed_chunked_body_is_400(live_server, tenant, body):
    path = f"/v1/tenants/{tenant}/token"
    status, headers, payload = raw_request(live_server, chunked_head(path, "baton.test"), body)
    assert status == 400, payload
    assert headers["content-type"] == "application/json"
    assert json.loads(payload)["error"] == "invalid_request"


def test_chunked_body_over_the_limit_is_413(live_server, tenant):
    form = b"grant_type=password&username=alice&password=" + b"x" * 20000
    body = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                    for part in (form[i:i + 4000] for i in range(0, len(form), 4000)))
    status, _, payload = raw_request(live_server, chunked_head(
        f"/v1/tenants/{tenant}/token", "baton.test"), body + b"0\r\n\r\n")
    assert status == 413, payload
    assert json.loads(payload)["error"] == "request_too_large"


def test_wellformed_chunked_body_still_works(live_server, tenant, user):
    form = f"grant_type=password&username={user[0]}&password={user[1]}".encode()
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(form), form)
    status, _, payload = raw_request(live_server, chunked_head(
        f"/v1/tenants/{tenant}/token", "baton.test"), body)
    assert status == 200, payload
    from tests import secret_registry

    secret_registry.remember_fields(json.loads(payload))
