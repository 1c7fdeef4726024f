"""Chained-refresh load generator: one process per client, keep-alive HTTP, newest token always.

Each client logs in before the clock starts, waits at a Barrier, then refreshes in a loop
for `seconds`, each time with the refresh token it received last (or, in the shared-token
mode, always with the one token all clients share: several tabs inside the reuse interval).
"""
from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import time
from dataclasses import dataclass
from dataclasses import field
from urllib.parse import urlencode
from urllib.parse import urlsplit

_CTX = mp.get_context("fork")


@dataclass
class Target:
    """Where to log in and refresh; the paths differ between Baton and the yardstick."""

    base_url: str
    login_path: str
    refresh_path: str
    login_form: dict = field(default_factory=dict)


@dataclass
class RunResult:
    clients: int
    seconds: float
    latencies: list[float]
    errors: int
    statuses: dict

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    def summary(self) -> dict:
        return {
            "clients": self.clients, "refreshes": self.ok, "errors": self.errors,
            "per_s": round(self.throughput, 1),
            "p50_ms": round(self.percentile(50) * 1000, 2),
            "p90_ms": round(self.percentile(90) * 1000, 2),
            "p99_ms": round(self.percentile(99) * 1000, 2),
        }


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def post(self, path: str, form: dict) -> tuple[int, dict]:
        body = urlencode(form)
        self.conn.request("POST", path, body=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        response = self.conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")


def login(target: Target, form: dict) -> str:
    status, body = Client(target.base_url).post(target.login_path, form)
    if status != 200:
        raise RuntimeError(f"login failed: {status} {body}")
    return body["refresh_token"]


def _client(target: Target, token: str, seconds: float, shared: bool, barrier, out) -> None:
    client = Client(target.base_url)
    latencies, statuses = [], {}
    barrier.wait(120)
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        status, body = client.post(target.refresh_path, {
            "grant_type": "refresh_token", "refresh_token": token})
        elapsed = time.perf_counter() - started
        statuses[status] = statuses.get(status, 0) + 1
        if status != 200:
            break  # a broken chain cannot continue
        latencies.append(elapsed)
        if not shared:
            token = body["refresh_token"]
    out.put((latencies, statuses))


def run(target: Target, tokens: list[str], seconds: float, *, shared: bool = False) -> RunResult:
    """Refresh from len(tokens) client processes for `seconds`; collect every latency."""
    barrier, out = _CTX.Barrier(len(tokens)), _CTX.Queue()
    procs = [_CTX.Process(target=_client, args=(target, t, seconds, shared, barrier, out))
             for t in tokens]
    for proc in procs:
        proc.start()
    latencies, statuses = [], {}
    for _ in procs:
        lat, st = out.get(timeout=seconds + 120)
        latencies.extend(lat)
        for status, count in st.items():
            statuses[status] = statuses.get(status, 0) + count
    for proc in procs:
        proc.join(30)
    errors = sum(c for s, c in statuses.items() if s != 200)
    return RunResult(len(tokens), seconds, latencies, errors, statuses)
