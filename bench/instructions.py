"""Instructions per refresh, counted by valgrind: `python -m bench.instructions [APP]`.

CPU seconds on a shared VM drift by tens of percent within minutes; instructions do not:
callgrind counts them exactly, whatever else the machine is doing. This runs N chained
refreshes of APP in-process (the WSGI app called as gunicorn calls it, on a fresh bench
database: BENCH_SERVER_URL or the embedded PostgreSQL) under callgrind twice, with N and
N + 1000 refreshes, and prints the difference over 1000: the instructions of one refresh on
the application's side (the database's are another process, not counted).

APP is `baton` (the default), `equal` (bench/equal_work_app.py) or `minimal`.
`--without PART[,PART]` takes parts of Baton's request out, to size them (an ablation, never
a configuration to ship): `metrics` (the histogram's after-request hook), `log` (the
request line's hook, and with it the X-Request-ID header), `cors` (the OAuth blueprint's CORS
hook), `framing` (the chunked-body middleware and its before-request check).
`--child N APP` is the measured process itself.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

from bench import servers

WARMUP = 300
EXTRA = 1000
# --without PART: the hooks each part adds to a request, by function name.
PARTS = {"metrics": {"_observe"}, "log": {"_log_request"}, "cors": {"add_cors_headers"},
         "framing": {"_refuse_bad_body"}}


def _without(app, parts: set[str]) -> None:
    names = set().union(*(PARTS[part] for part in parts))
    for hooks in [*app.before_request_funcs.values(), *app.after_request_funcs.values()]:
        hooks[:] = [hook for hook in hooks if hook.__name__ not in names]
    if "framing" in parts:
        app.wsgi_app = app.wsgi_app.app  # the ChunkedBodyBuffer's inner app


def _baton():
    from bench.profile_refresh import make_app
    from bench.profile_refresh import wsgi_post

    app = make_app()
    _without(app, set(filter(None, os.environ.get("BENCH_WITHOUT", "").split(","))))
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


def main(name: str = "baton", without: str = "") -> None:
    parts = set(filter(None, without.split(",")))
    if parts - PARTS.keys() or (parts and name != "baton"):
        sys.exit(f"Error: --without takes {', '.join(PARTS)} (for baton only)")
    os.environ["BENCH_WITHOUT"] = ",".join(sorted(parts))
    secret = servers.random_secret()
    base = _count(0, name, secret)
    more = _count(EXTRA, name, secret)
    label = f"{name} without {', '.join(sorted(parts))}" if parts else name
    print(f"{label}: {(more - base) / EXTRA / 1e6:.3f} M instructions per refresh "
          f"({base / 1e9:.2f} G for start-up and {WARMUP} warm-up refreshes)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]), sys.argv[3])
    else:
        parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("app", nargs="?", default="baton",
                            choices=("baton", "equal", "minimal"))
        parser.add_argument("--without", default="", metavar="PART[,PART]")
        args = parser.parse_args()
        main(args.app, args.without)
