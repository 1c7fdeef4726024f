"""Instructions per refresh, counted by valgrind: `python -m bench.instructions [APP]`.

CPU seconds on a shared VM drift by tens of percent within minutes; instructions do not:
callgrind counts them exactly, whatever else the machine is doing. This runs N chained
refreshes of APP in-process (the WSGI app called as gunicorn calls it, on a fresh bench
database: BENCH_SERVER_URL or the embedded PostgreSQL) under callgrind twice, with N and
N + 1000 refreshes, and prints the difference over 1000: the instructions of one refresh on
the application's side (the database's are another process, not counted).

APP is `baton` (the default), `equal` (bench/equal_work_app.py) or `minimal`.
`--child N APP` is the measured process itself.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile

from bench import servers

WARMUP = 300
EXTRA = 1000


def _baton():
    from bench.profile_refresh import make_app
    from bench.profile_refresh import wsgi_post

    app = make_app()
    token = wsgi_post(app, b"grant_type=password&username=u0&password=bench+password")[
        "refresh_token"]

    def refresh(token: str) -> str:
        return wsgi_post(app, f"grant_type=refresh_token&refresh_token={token}".encode())[
            "refresh_token"]

    return token, refresh


def _yardstick(module: str, env: dict[str, str]):
    from bench.profile_refresh import make_app
    from bench.profile_refresh import wsgi_post

    make_app()  # Baton's schema, tenant and user: the equal-work app uses them
    os.environ.update(env)
    yardstick = __import__(module, fromlist=["app"])
    if hasattr(yardstick, "SCHEMA"):
        import psycopg2

        with psycopg2.connect(env["MINI_DATABASE_URL"]) as conn, conn.cursor() as cur:
            cur.execute(yardstick.SCHEMA)
    token = wsgi_post(yardstick.app, b"", "/login")["refresh_token"]

    def refresh(token: str) -> str:
        return wsgi_post(yardstick.app, f"refresh_token={token}".encode(), "/token")[
            "refresh_token"]

    return token, refresh


def child(n: int, name: str) -> None:
    url = servers.with_database(servers.server_url(), servers.BENCH_DB)
    if name == "baton":
        token, refresh = _baton()
    elif name == "equal":
        token, refresh = _yardstick("bench.equal_work_app", {
            "EQUAL_DATABASE_URL": url, "EQUAL_SECRET_KEY": os.environ["BENCH_SECRET"]})
    else:
        token, refresh = _yardstick("bench.minimal_app", {"MINI_DATABASE_URL": url})
    for _ in range(WARMUP + n):
        token = refresh(token)


def _count(n: int, name: str, secret: str) -> int:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
             sys.executable, "-m", "bench.instructions", "--child", str(n), name],
            cwd=servers.ROOT, env={**os.environ, "BENCH_SECRET": secret,
                                   "PYTHONHASHSEED": "0"},
            check=True, capture_output=True, text=True)
        text = open(f"{out}/cg.out").read()
    return int(re.search(r"^summary: (\d+)", text, re.M).group(1))


def main(name: str = "baton") -> None:
    secret = servers.random_secret()
    base = _count(0, name, secret)
    more = _count(EXTRA, name, secret)
    print(f"{name}: {(more - base) / EXTRA / 1e6:.3f} M instructions per refresh "
          f"({base / 1e9:.2f} G for start-up and {WARMUP} warm-up refreshes)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), sys.argv[3])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else "baton")
