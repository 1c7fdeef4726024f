"""Run every benchmark scenario and write a report: `python -m bench [--quick]`.

Scenarios (docs/performance.md explains the targets):
  yardstick   Baton vs the minimal Flask + psycopg2 app, 16 clients, side by side, in
              --rounds alternating rounds (medians of the rounds' ratios)
  ceiling     pgbench running the yardstick's SQL
  cpu         server + database CPU per Baton refresh (measured during `yardstick`)
  sequential  the same CPU figures with one client at a time: no contention for the two
              cores, so the ratio is far steadier than under 16 clients
  tabs        8 clients sharing one session inside the reuse interval vs 8 sessions
  table-size  refresh p50 with a small table and with --rows token rows
  purge       refresh p99 of 8 clients before and while purging --purge-rows rows
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from datetime import timezone

import sqlalchemy as sa

from bench import loadgen
from bench import servers

ROOT = servers.ROOT
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15, help="length of each timed run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rows", type=int, default=10_000_000,
                        help="token rows for the table-size scenario")
    parser.add_argument("--purge-rows", type=int, default=1_000_000)
    parser.add_argument("--purge-duty-cycle", type=int, default=None, metavar="PERCENT",
                        help="`flask tokens purge --duty-cycle` (default: the command's own)")
    parser.add_argument("--quick", action="store_true",
                        help="5 s runs, 1M rows, 200k purge rows: a smoke run")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds of the yardstick scenario (medians reported)")
    parser.add_argument("--only", nargs="*", help="run only these scenarios")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rows, args.purge_rows, args.rounds = 5, 1_000_000, 200_000, 1
    return args


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.db_url = servers.recreate_database(servers.server_url())
        self.engine = sa.create_engine(servers.psycopg2_url(self.db_url))
        self.secret = servers.random_secret()
        self.report: dict = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             "database": _describe(self.db_url), "args": vars(args)}
        self._setup_schema()
        self.baton = servers.Gunicorn("wsgi:app", {
            "BATON_ENV": "production", "SECRET_KEY": self.secret, "DATABASE_URL": self.db_url,
            "BATON_BASE_URL": "http://bench.local"})
        self.mini = servers.Gunicorn("bench.minimal_app:app", {"MINI_DATABASE_URL": self.db_url})

    # -- setup ------------------------------------------------------------------------------
    def _app(self):
        import config
        from app import create_app

        return create_app(config.ProductionConfig, {
            "SECRET_KEY": self.secret, "BASE_URL": "http://bench.local",
            "SQLALCHEMY_DATABASE_URI": config.psycopg2_url(self.db_url)})

    def _setup_schema(self) -> None:
        from flask_migrate import upgrade

        from app.services.accounts import users
        from app.services.tenancy import tenants
        from bench.minimal_app import SCHEMA

        app, now = self._app(), datetime.now(timezone.utc)
        with app.app_context():
            upgrade()
            tenants.create_tenant(tenants.TenantSettings("bench", "Bench"), now)
            tenants.create_tenant(tenants.TenantSettings("tabs", "Tabs", reuse_interval=300), now)
            for i in range(max(self.args.clients, 8)):
                users.create_user("bench", f"u{i}", "bench password", now)
            users.create_user("tabs", "u0", "bench password", now)
        with self.engine.begin() as conn:
            conn.execute(sa.text(SCHEMA))

    def baton_target(self, tenant: str = "bench") -> loadgen.Target:
        return loadgen.Target(self.baton.url, f"/v1/tenants/{tenant}/token",
                              f"/v1/tenants/{tenant}/token")

    def baton_tokens(self, n: int, tenant: str = "bench") -> list[str]:
        target = self.baton_target(tenant)
        return [loadgen.login(target, {"grant_type": "password", "username": f"u{i}",
                                       "password": "bench password"}) for i in range(n)]

    def mini_tokens(self, n: int) -> list[str]:
        target = loadgen.Target(self.mini.url, "/login", "/token")
        return [loadgen.login(target, {}) for _ in range(n)]

    def run_baton(self, clients: int, seconds: float | None = None) -> loadgen.RunResult:
        return loadgen.run(self.baton_target(), self.baton_tokens(clients),
                           seconds or self.args.seconds)

    # -- scenarios --------------------------------------------------------------------------
    def yardstick(self) -> None:
        """Both apps under 16 clients, in alternating rounds (this shared VM drifts by tens
        of percent within minutes): each ratio is the median of the rounds' ratios."""
        n, seconds = self.args.clients, self.args.seconds
        mini_target = loadgen.Target(self.mini.url, "/login", "/token")
        loadgen.run(mini_target, self.mini_tokens(n), 2)  # warm up both
        self.run_baton(n, 2)
        rounds = []
        for i in range(self.args.rounds):
            # Log in before the meters start: only refreshes are measured.
            mini_tokens, baton_tokens = self.mini_tokens(n), self.baton_tokens(n)
            runs = {}
            order = [("minimal", self.mini, mini_target, mini_tokens),
                     ("baton", self.baton, self.baton_target(), baton_tokens)]
            for name, server, target, tokens in (order if i % 2 == 0 else order[::-1]):
                with servers.CpuMeter(server.processes) as app, \
                        servers.CpuMeter(servers.postgres_processes) as db:
                    run = loadgen.run(target, tokens, seconds)
                runs[name] = (run, app.seconds / run.ok * 1000, db.seconds / run.ok * 1000)
            rounds.append(runs)
        summaries = [self._yardstick_round(r) for r in rounds]
        middle = sorted(range(len(rounds)),
                        key=lambda i: summaries[i]["throughput_ratio"])[len(rounds) // 2]
        median = lambda key: round(statistics.median(r[key] for r in summaries), 3)  # noqa: E731
        self.report["yardstick"] = {
            "minimal": rounds[middle]["minimal"][0].summary(),  # the median round
            "baton": rounds[middle]["baton"][0].summary(),
            "throughput_ratio": median("throughput_ratio"),
            "p99_ratio": median("p99_ratio"),
            "rounds": summaries,
        }
        self.report["cpu"] = {
            "baton_ms_per_refresh": median("baton_cpu_ms"),
            "baton_app_ms": median("baton_app_ms"), "baton_db_ms": median("baton_db_ms"),
            "minimal_ms_per_refresh": median("minimal_cpu_ms"),
            "minimal_app_ms": median("minimal_app_ms"), "minimal_db_ms": median("minimal_db_ms"),
            "cpu_ratio": median("cpu_ratio"),
        }

    @staticmethod
    def _yardstick_round(runs: dict) -> dict:
        (mini, mini_app, mini_db), (baton, baton_app, baton_db) = runs["minimal"], runs["baton"]
        return {
            "minimal_per_s": round(mini.throughput, 1), "baton_per_s": round(baton.throughput, 1),
            "throughput_ratio": round(baton.throughput / mini.throughput, 3),
            "p99_ratio": round(baton.percentile(99) / mini.percentile(99), 3),
            "baton_errors": baton.errors, "minimal_errors": mini.errors,
            "baton_app_ms": round(baton_app, 3), "baton_db_ms": round(baton_db, 3),
            "baton_cpu_ms": round(baton_app + baton_db, 3),
            "minimal_app_ms": round(mini_app, 3), "minimal_db_ms": round(mini_db, 3),
            "minimal_cpu_ms": round(mini_app + mini_db, 3),
            "cpu_ratio": round((baton_app + baton_db) / (mini_app + mini_db), 3),
        }

    def sequential(self) -> None:
        n, rounds = (500 if self.args.quick else 2000), 3
        mini_target = loadgen.Target(self.mini.url, "/login", "/token")
        runs: dict[str, list[tuple[float, float]]] = {"minimal": [], "baton": []}
        for _ in range(rounds):  # alternating, so drift in the machine hits both alike
            runs["minimal"].append(self._sequential_cpu(
                self.mini, mini_target, self.mini_tokens(1)[0], n))
            runs["baton"].append(self._sequential_cpu(
                self.baton, self.baton_target(), self.baton_tokens(1)[0], n))
        report: dict = {"refreshes_per_run": n, "runs": rounds}
        for name, results in runs.items():
            app = statistics.median(r[0] for r in results)
            db = statistics.median(r[1] for r in results)
            report[name] = {"app_ms": round(app, 3), "db_ms": round(db, 3),
                            "total_ms": round(app + db, 3),
                            "totals": [round(a + d, 3) for a, d in results]}
        report["cpu_ratio"] = round(report["baton"]["total_ms"] / report["minimal"]["total_ms"], 3)
        self.report["sequential"] = report

    @staticmethod
    def _sequential_cpu(server: servers.Gunicorn, target: loadgen.Target, token: str,
                        n: int) -> tuple[float, float]:
        """(server, database) CPU ms per refresh of one client chaining n refreshes."""
        client = loadgen.Client(target.base_url)
        form = {"grant_type": "refresh_token"}

        def refresh(token: str) -> str:
            status, body = client.post(target.refresh_path, {**form, "refresh_token": token})
            if status != 200:
                raise RuntimeError(f"refresh failed: {status} {body}")
            return body["refresh_token"]

        for _ in range(50):
            token = refresh(token)
        with servers.CpuMeter(server.processes) as app, \
                servers.CpuMeter(servers.postgres_processes) as db:
            for _ in range(n):
                token = refresh(token)
        return app.seconds / n * 1000, db.seconds / n * 1000

    def ceiling(self) -> None:
        rows = 100_000
        with self.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO mini_tokens (digest, created_at) SELECT sha256(g::text::bytea),"
                " now() FROM generate_series(1, :rows) g ON CONFLICT DO NOTHING"), {"rows": rows})
        self.report["ceiling"] = servers.pgbench(
            self.db_url, ROOT / "bench" / "rotation.pgbench", self.args.clients,
            int(self.args.seconds), {"rows": rows})

    def tabs(self) -> None:
        target = self.baton_target("tabs")
        shared = loadgen.login(target, {"grant_type": "password", "username": "u0",
                                        "password": "bench password"})
        seconds = min(self.args.seconds, 8)  # inside the 300 s interval with margin
        tabs = loadgen.run(target, [shared] * 8, seconds, shared=True)
        independent = self.run_baton(8, seconds)
        self.report["tabs"] = {"shared_session": tabs.summary(),
                               "independent": independent.summary(),
                               "ratio": round(tabs.throughput / independent.throughput, 3)}

    def table_size(self) -> None:
        small_rows = self._count_tokens()
        small = self.run_baton(8)
        started = time.monotonic()
        self._fill_tokens(self.args.rows - small_rows)
        fill_s = time.monotonic() - started
        self.run_baton(8, 3)  # warm the caches after the bulk load
        big = self.run_baton(8)
        self.report["table_size"] = {
            "small": {"rows": small_rows, **small.summary()},
            "big": {"rows": self._count_tokens(), **big.summary()},
            "p50_change": round(big.percentile(50) / small.percentile(50) - 1, 3),
            "fill_seconds": round(fill_s, 1),
        }

    def purge(self) -> None:
        self._seed_expired(self.args.purge_rows)
        before = self.run_baton(8)
        done = {}

        def run_purge():
            started = time.monotonic()
            out = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "wsgi", "tokens", "purge",
                 "--retention", "1d", "--batch-size", "1000",
                 *(["--duty-cycle", str(self.args.purge_duty_cycle)]
                   if self.args.purge_duty_cycle else [])], cwd=ROOT, capture_output=True,
                text=True, env=self._cli_env())
            done.update(seconds=time.monotonic() - started, output=out.stdout.strip(),
                        error=out.stderr.strip()[-500:], rc=out.returncode)

        purger = threading.Thread(target=run_purge)
        purger.start()
        time.sleep(1)  # let the purge get going before measuring
        during = self.run_baton(8)
        purger.join()
        self.report["purge"] = {
            "rows": self.args.purge_rows, "before": before.summary(), "during": during.summary(),
            "p99_change": round(during.percentile(99) / before.percentile(99) - 1, 3),
            "purge_seconds": round(done["seconds"], 1), "purge_output": done["output"],
            "purge_rc": done["rc"],
            "purge_overlapped_whole_run": done["seconds"] > 1 + during.seconds,
        }

    # -- data -------------------------------------------------------------------------------
    def _cli_env(self) -> dict:
        import os

        return {**os.environ, "BATON_ENV": "production", "SECRET_KEY": self.secret,
                "DATABASE_URL": self.db_url, "BATON_BASE_URL": "http://bench.local"}

    def _count_tokens(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM refresh_tokens")).scalar_one()

    def _fill_tokens(self, rows: int, chunk: int = 1_000_000) -> None:
        """Live-looking rotated tokens of filler sessions (purge leaves them alone)."""
        with self.engine.begin() as conn:
            conn.execute(sa.text("""
                INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at,
                                      expires_at, auth_time)
                SELECT md5('fill' || g)::uuid, 1, 1, now(), now(), now() + interval '30 days',
                       now()
                FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING"""))
        for start in range(0, rows, chunk):
            count = min(chunk, rows - start)
            with self.engine.begin() as conn:
                conn.execute(sa.text("""
                    INSERT INTO refresh_tokens (tenant_id, session_id, digest, created_at,
                                                expires_at, rotated_at)
                    SELECT 1, md5('fill' || (g % 10000 + 1))::uuid,
                           sha256(('fill' || g)::bytea), now(), now() + interval '14 days', now()
                    FROM generate_series(:lo, :hi) g"""), {"lo": start + 1, "hi": start + count})
        self._settle()

    def _settle(self) -> None:
        """After a bulk load: fresh statistics, and its writes flushed before measuring."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE refresh_tokens"))
            conn.execute(sa.text("VACUUM ANALYZE sessions"))
            conn.execute(sa.text("CHECKPOINT"))

    def _seed_expired(self, rows: int) -> None:
        """Sessions revoked two days ago, 100 rotated tokens each."""
        sessions = max(1, rows // 100)
        with self.engine.begin() as conn:
            conn.execute(sa.text("""
                INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at,
                                      expires_at, revoked_at, auth_time)
                SELECT md5('old' || g)::uuid, 1, 1, now() - interval '9 days',
                       now() - interval '9 days', now() + interval '1 day',
                       now() - interval '2 days', now() - interval '9 days'
                FROM generate_series(1, :n) g"""), {"n": sessions})
            conn.execute(sa.text("""
                INSERT INTO refresh_tokens (tenant_id, session_id, digest, created_at,
                                            expires_at, rotated_at)
                SELECT 1, md5('old' || (g % :n + 1))::uuid, sha256(('old' || g)::bytea),
                       now() - interval '9 days', now() + interval '1 day',
                       now() - interval '9 days'
                FROM generate_series(1, :rows) g"""), {"n": sessions, "rows": rows})
        self._settle()

    def close(self) -> None:
        self.baton.stop()
        self.mini.stop()
        self.engine.dispose()


SCENARIOS = ["yardstick", "sequential", "ceiling", "tabs", "purge", "table_size"]


def _describe(url: str) -> str:
    parsed = sa.engine.make_url(url)
    return "embedded (unix socket)" if parsed.query.get("host") else f"{parsed.host}:{parsed.port}"


def render(report: dict) -> str:
    lines = [f"# Baton benchmark, {report['started']}", "",
             f"Database: {report['database']}; args: {json.dumps(report['args'])}", ""]
    for name in ["yardstick", "cpu", "sequential", "ceiling", "tabs", "table_size", "purge"]:
        if name in report:
            lines += [f"## {name}", "", "```json", json.dumps(report[name], indent=2), "```", ""]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    bench = Bench(args)
    try:
        for name in SCENARIOS:
            if args.only and name not in args.only:
                continue
            print(f"running {name} ...", file=sys.stderr, flush=True)
            getattr(bench, name)()
    finally:
        bench.close()
    text = render(bench.report)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    (out_dir / f"report-{stamp}.md").write_text(text)
    (out_dir / f"report-{stamp}.json").write_text(json.dumps(bench.report, indent=2))
    print(text)
    print(f"(written to bench/results/report-{stamp}.md)", file=sys.stderr)


if __name__ == "__main__":
    main()
