"""Where the time of one refresh goes: `python -m bench.profile_refresh [N] [--cpu-only]`.

Against a fresh bench database, calls the WSGI app directly (as gunicorn would, without the
HTTP server) for N chained refreshes: prints the SQL of one refresh, the CPU time per refresh
(process_time, no profiler), the part spent in `rotation.rotate()`, the database's side of the
same refreshes (CPU of every postgres process, WAL bytes, and how many updates were HOT),
then a cProfile of N more.
`--cpu-only` stops after the CPU figure (no yardstick, no profile).
`--split` prints, instead of a cProfile, the thread CPU time spent in each part of the
request (each function timed around its calls, so nested parts are included in their
callers): the figures of a real request, where cold caches make every part several times
slower than a micro-benchmark of it in a loop.

`python -m bench.profile_refresh N --metrics-cost RUNS`: the cost of metrics and events on
the refresh path (SPEC §12): RUNS alternating `--cpu-only` runs with BATON_METRICS=0 and =1,
each in a fresh process with the multiprocess value store (as under gunicorn); prints the
median CPU per refresh of each and the difference.
"""
from __future__ import annotations

import cProfile
import io
import json
import logging
import os
import pstats
import sys
import time
from datetime import datetime
from datetime import timezone

from sqlalchemy import event

from bench import servers


def make_app():
    from flask_migrate import upgrade

    import config
    from app import create_app
    from app.extensions import db
    from app.services.accounts import users
    from app.services.tenancy import tenants

    url = servers.recreate_database(servers.server_url())
    app = create_app(config.ProductionConfig, {
        "SECRET_KEY": os.environ.get("BENCH_SECRET") or servers.random_secret(),
        "BASE_URL": "http://bench.local",
        "SQLALCHEMY_DATABASE_URI": config.psycopg2_url(url)})
    now = datetime.now(timezone.utc)
    with app.app_context():
        upgrade()
        tenants.create_tenant(tenants.TenantSettings("bench", "Bench"), now)
        users.create_user("bench", "u0", "bench password", now)
        db.session.remove()
    # The migrations' logging configuration (alembic.ini) gives the root logger a stderr
    # handler, so every request line would also be formatted and written a second time.
    # Under gunicorn nothing does that: drop it.
    for handler in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(handler)
    logging.getLogger("app").handlers[0].stream = open("/dev/null", "w")  # keep the lines cheap
    return app


def wsgi_post(app, body: bytes, path: str = "/v1/tenants/bench/token") -> dict:
    environ = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000", "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.url_scheme": "http",
        "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    result = app.wsgi_app(environ, lambda status, headers, exc_info=None: None)
    try:
        return json.loads(b"".join(result))
    finally:
        result.close()


def yardstick_cpu(n: int) -> float:
    """CPU per refresh of bench/minimal_app.py, called the same way on the same database."""
    import os

    import psycopg2

    url = servers.with_database(servers.server_url(), servers.BENCH_DB)
    os.environ["MINI_DATABASE_URL"] = url
    from bench.minimal_app import SCHEMA
    from bench.minimal_app import app

    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    token = wsgi_post(app, b"", "/login")["refresh_token"]
    for i in range(200 + n):
        if i == 200:
            started = time.process_time()
        token = wsgi_post(app, f"refresh_token={token}".encode(), "/token")["refresh_token"]
    return (time.process_time() - started) / n * 1000


def metrics_cost(n: int, runs: int) -> None:
    import os
    import re
    import statistics
    import subprocess
    import tempfile

    figures: dict[str, list[float]] = {"0": [], "1": []}
    for _ in range(runs):
        for enabled in ("0", "1"):
            with tempfile.TemporaryDirectory() as store:
                out = subprocess.run(
                    [sys.executable, "-m", "bench.profile_refresh", str(n), "--cpu-only"],
                    env={**os.environ, "BATON_METRICS": enabled,
                         "PROMETHEUS_MULTIPROC_DIR": store},
                    cwd=servers.ROOT, capture_output=True, text=True, check=True).stdout
            figures[enabled].append(float(re.search(r"CPU per refresh over \d+: ([\d.]+) ms",
                                                    out).group(1)))
    off, on = statistics.median(figures["0"]), statistics.median(figures["1"])
    print(f"BATON_METRICS=0: {figures['0']} ms, median {off:.3f}")
    print(f"BATON_METRICS=1: {figures['1']} ms, median {on:.3f}")
    print(f"metrics and events cost {on - off:.3f} ms per refresh: {(on / off - 1) * 100:+.1f} %")


class DatabaseMeter:
    """WAL bytes and (HOT) updates of the two token tables since it was made."""

    _STATS = ("SELECT pg_current_wal_lsn() AS lsn, (SELECT json_object_agg(relname,"
              " json_build_array(n_tup_upd, n_tup_hot_upd)) FROM pg_stat_user_tables"
              " WHERE relname IN ('sessions', 'refresh_tokens')) AS updates")

    def __init__(self, app) -> None:
        from app.extensions import db

        with app.app_context():
            self.engine = db.engine
        self.before = self._read()

    def _read(self):
        import sqlalchemy as sa

        time.sleep(1.5)  # the app's backend publishes its statistics within a second of idling
        with self.engine.connect() as conn:
            return conn.execute(sa.text(self._STATS)).one()

    def report(self, n: int) -> str:
        import sqlalchemy as sa

        after = self._read()
        with self.engine.connect() as conn:
            wal = conn.execute(sa.text("SELECT pg_wal_lsn_diff(:a, :b)"),
                               {"a": after.lsn, "b": self.before.lsn}).scalar_one()
        parts = [f"{float(wal) / n:.0f} WAL bytes"]
        for table in ("refresh_tokens", "sessions"):
            upd = after.updates[table][0] - self.before.updates[table][0]
            hot = after.updates[table][1] - self.before.updates[table][1]
            parts.append(f"{table}: {upd / n:.2f} updates, {hot / max(upd, 1) * 100:.0f} % HOT")
        return "; ".join(parts)


def split(app, refresh, n: int) -> None:
    """Thread CPU time per refresh in each part of the request (see the module docstring)."""
    import functools

    import flask

    from app.http import inputs
    from app.oauth import routes
    from app.services.tokens import family
    from app.services.tokens import rotation

    spent: dict[str, int] = {}
    clock = time.thread_time_ns

    def timed(fn, label):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            started = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] = spent.get(label, 0) + clock() - started
        return wrapper

    for module, name in [(inputs, "oauth_fields"), (inputs, "validate"),
                         (routes, "token_response"), (rotation, "private_key"),
                         (rotation, "decide"), (rotation, "_rotate"), (rotation, "issue"),
                         (rotation, "count_refresh"), (family, "lock_token"),
                         (rotation, "lookup_tenant")]:
        setattr(module, name, timed(getattr(module, name), name))
    routes.rotation.rotate = timed(routes.rotation.rotate, "rotate")
    for name in ("preprocess_request", "process_response", "full_dispatch_request",
                 "do_teardown_appcontext", "request_context"):
        setattr(flask.Flask, name, timed(getattr(flask.Flask, name), name))
    for hooks, kind in ((app.before_request_funcs, "before"), (app.after_request_funcs, "after")):
        for key, funcs in hooks.items():
            hooks[key] = [timed(f, f"{kind}_request: {f.__name__}") for f in funcs]
    for _ in range(200):
        refresh()
    spent.clear()
    started = clock()
    for _ in range(n):
        refresh()
    total = clock() - started
    print(f"\nThread CPU per refresh by part, {n} refreshes (nested parts count in their callers):")
    for label, ns in sorted(spent.items(), key=lambda item: -item[1]):
        print(f"  {label:<34} {ns / n / 1000:8.1f} us")
    print(f"  {'whole request, with this harness':<34} {total / n / 1000:8.1f} us")


def main(n: int = 2000, cpu_only: bool = False, split_only: bool = False) -> None:
    from app.extensions import db
    from app.oauth import routes

    app = make_app()
    token = wsgi_post(app, b"grant_type=password&username=u0&password=bench+password")[
        "refresh_token"]

    def refresh() -> None:
        nonlocal token
        token = wsgi_post(app, f"grant_type=refresh_token&refresh_token={token}".encode())[
            "refresh_token"]

    if split_only:
        split(app, refresh, n)
        return
    with app.app_context():
        seen: list[str] = []
        listener = lambda c, cur, stmt, *a: seen.append(" ".join(stmt.split())[:110])  # noqa
        event.listen(db.engine, "before_cursor_execute", listener)
        refresh()
        event.remove(db.engine, "before_cursor_execute", listener)
    print("SQL statements of one refresh (plus BEGIN and COMMIT):")
    for statement in seen:
        print("  ", statement)

    in_rotate = [0.0]
    rotate = routes.rotation.rotate

    def timed_rotate(*args, **kwargs):
        started = time.process_time()
        try:
            return rotate(*args, **kwargs)
        finally:
            in_rotate[0] += time.process_time() - started

    routes.rotation.rotate = timed_rotate
    for _ in range(200):
        refresh()
    in_rotate[0] = 0.0
    database = DatabaseMeter(app)
    with servers.CpuMeter(servers.postgres_processes) as db_cpu:
        started = time.process_time()
        for _ in range(n):
            refresh()
        total = (time.process_time() - started) / n * 1000
    rotating = in_rotate[0] / n * 1000
    print(f"\nCPU per refresh over {n}: {total:.3f} ms; rotation.rotate() {rotating:.3f} ms; "
          f"the rest of the request {total - rotating:.3f} ms")
    print(f"Database per refresh: {db_cpu.seconds / n * 1000:.3f} ms CPU (every postgres "
          f"process); {database.report(n)}")
    routes.rotation.rotate = rotate
    if cpu_only:
        return
    print(f"The yardstick's whole request, measured the same way: {yardstick_cpu(n):.3f} ms")

    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(n):
        refresh()
    profiler.disable()
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.profile_refresh",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, nargs="?", default=2000, help="refreshes per measure")
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--split", action="store_true", help="thread CPU time by part")
    parser.add_argument("--metrics-cost", type=int, metavar="RUNS")
    args = parser.parse_args()
    if args.metrics_cost:
        metrics_cost(args.n, args.metrics_cost)
    else:
        main(args.n, args.cpu_only, args.split)
