"""Real webhook receivers for the tests: threaded HTTP servers on free local ports."""
from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer


class Receiver:
    """A threaded HTTP server on 127.0.0.1 that records every request it gets.

    `hang=True`: it reads each request and then answers nothing, holding the connection
    until `release()` (a receiver that hangs without answering); the request is recorded
    on arrival. `arrivals` holds (webhook-id, time.monotonic()) of each request.
    """

    def __init__(self, port: int = 0, status: int = 204, delay_s: float = 0.0,
                 headers: dict[str, str] | None = None, hang: bool = False) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.arrivals: list[tuple[str, float]] = []
        self.status, self.delay_s, self.extra_headers = status, delay_s, headers or {}
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hang:
                    receiver.arrivals.append((self.headers["webhook-id"], time.monotonic()))
                    receiver.requests.append((dict(self.headers.items()), body))
                    receiver.released.wait()
                    self.close_connection = True
                    return  # no answer at all
                time.sleep(receiver.delay_s)
                receiver.arrivals.append((self.headers["webhook-id"], time.monotonic()))
                receiver.requests.append((dict(self.headers.items()), body))
                self.send_response(receiver.status)
                for name, value in receiver.extra_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks/baton?x=1"
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()

    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _ in self.requests]

    def release(self) -> None:
        """Let hanging requests go (they end without an answer)."""
        self.released.set()

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
