"""One webhook POST, bounded by a single deadline (the deliverer's timeout).

The deliverer's lease protocol (app.services.audit.webhooks) needs a POST that never
outlives its deadline: name resolution, connecting, sending and reading the answer all count
against it, and a watchdog shuts the socket when it passes, however slowly a receiver drips
its answer. Redirects are never followed.
"""
from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

CONNECT_TIMEOUT_S = 5.0


def _resolve(host: str, port: int, timeout_s: float) -> list[tuple]:
    """getaddrinfo with a bound: the resolver has no timeout of its own. A slow lookup is
    abandoned (its thread only resolves; it never sends anything)."""
    found: dict[str, object] = {}

    def lookup() -> None:
        try:
            found["addresses"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            found["error"] = exc

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(max(0.0, timeout_s))
    if worker.is_alive():
        raise TimeoutError("name resolution took too long")
    if "error" in found:
        raise found["error"]  # type: ignore[misc]
    return found["addresses"]  # type: ignore[return-value]


def _connect(host: str, port: int, deadline: float) -> socket.socket:
    """A TCP connection made within the deadline, trying the resolved addresses in turn."""
    last: OSError = TimeoutError("no address answered in time")
    for family, kind, proto, _, address in _resolve(host, port, deadline - time.monotonic()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        sock = socket.socket(family, kind, proto)
        sock.settimeout(min(CONNECT_TIMEOUT_S, remaining))
        try:
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last


def post(url: str, body: bytes, headers: dict[str, str],
         deadline_s: float) -> int:
    """POST and return the status. Never follows a redirect (a 3xx is a failure).

    The whole exchange is bounded by one deadline, so a delivery never outlives its lease
    (which would let another deliverer send the same event at the same time): name
    resolution and connecting count against it, nothing is sent once it has passed, and a
    watchdog shuts the socket at the deadline, however slowly the receiver drips its answer.
    """
    parts = urlsplit(url)
    https = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if https else 80)
    deadline = time.monotonic() + deadline_s
    conn_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
    conn = conn_class(host, port, timeout=deadline_s)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        if conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    watchdog = threading.Timer(deadline_s, cut)
    watchdog.daemon = True
    watchdog.start()
    try:
        sock = _connect(host, port, deadline)
        if https:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        if expired.is_set() or time.monotonic() >= deadline:
            sock.close()
            raise TimeoutError(f"no connection within {deadline_s:.0f} s")
        conn.sock = sock
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(64 * 1024)  # a little of the answer; the status is what counts
        return response.status
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise TimeoutError(f"no answer within {deadline_s:.0f} s") from None
        raise exc
    finally:
        watchdog.cancel()
        conn.close()
