"""Run every benchmark scenario and write a report: `python -m bench [--quick]`.

Scenarios (docs/performance.md explains the targets):
  yardstick   Baton vs the equal-work yardstick (bench/equal_work_app.py: SPEC §5's work,
              Baton's SQL, no architecture) and vs the minimal Flask + psycopg2 app (the
              floor), 16 clients, side by side, in --rounds rotating rounds (medians of the
              rounds' ratios)
  ceiling     pgbench running the yardstick's SQL
  cpu         server + database CPU per Baton refresh (measured during `yardstick`)
  sequential  the same CPU figures with one client at a time: no contention for the two
              cores, so the ratio is far steadier than under 16 clients
  tabs        8 clients sharing one session inside the reuse interval vs 8 sessions
  table-size  refresh p50 with a small table and with --rows token rows
  purge       refresh p99 of 8 clients before and while purging --purge-rows rows
  signin      full sign-ins (challenge with the password, TOTP, redeem) one at a time: CPU
              per sign-in, and the share of argon2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Callable

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
        self.equal = servers.Gunicorn("bench.equal_work_app:app", {
            "EQUAL_DATABASE_URL": self.db_url, "EQUAL_SECRET_KEY": self.secret,
            "EQUAL_TENANT": "bench", "EQUAL_ISSUER": "http://bench.local/v1/tenants/bench",
            # prepared exactly when Baton prepares (BATON_DB_PREPARED_STATEMENTS)
            "EQUAL_PREPARED": os.environ.get("BATON_DB_PREPARED_STATEMENTS", "1")})

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

    def equal_tokens(self, n: int) -> list[str]:
        target = loadgen.Target(self.equal.url, "/login", "/token")
        return [loadgen.login(target, {}) for _ in range(n)]

    def apps(self) -> list[tuple[str, servers.Gunicorn, loadgen.Target, Callable[[int], list]]]:
        """(name, server, target, logins) of the three apps the yardstick compares."""
        return [("minimal", self.mini, loadgen.Target(self.mini.url, "/login", "/token"),
                 self.mini_tokens),
                ("equal", self.equal, loadgen.Target(self.equal.url, "/login", "/token"),
                 self.equal_tokens),
                ("baton", self.baton, self.baton_target(), self.baton_tokens)]

    def run_baton(self, clients: int, seconds: float | None = None) -> loadgen.RunResult:
        return loadgen.run(self.baton_target(), self.baton_tokens(clients),
                           seconds or self.args.seconds)

    # -- scenarios --------------------------------------------------------------------------
    def yardstick(self) -> None:
        """The three apps under 16 clients, in rotating rounds (this shared VM drifts by tens
        of percent within minutes): each ratio is the median of the rounds' ratios."""
        n, seconds = self.args.clients, self.args.seconds
        apps = self.apps()
        for _, _, target, logins in apps:  # warm every app up
            loadgen.run(target, logins(n), 2)
        rounds = []
        for i in range(self.args.rounds):
            # Log in before the meters start: only refreshes are measured.
            tokens = {name: logins(n) for name, _, _, logins in apps}
            runs = {}
            for name, server, target, _ in apps[i % 3:] + apps[:i % 3]:
                with servers.CpuMeter(server.processes) as app, \
                        servers.CpuMeter(servers.postgres_processes) as db:
                    run = loadgen.run(target, tokens[name], seconds)
                runs[name] = (run, app.seconds / run.ok * 1000, db.seconds / run.ok * 1000)
            rounds.append(runs)
        summaries = [self._yardstick_round(r) for r in rounds]
        middle = sorted(range(len(rounds)),
                        key=lambda i: summaries[i]["equal"]["throughput_ratio"])[len(rounds) // 2]
        report: dict = {name: rounds[middle][name][0].summary() for name, *_ in apps}
        for against in ("equal", "minimal"):
            report[f"vs_{against}"] = {
                key: round(statistics.median(r[against][key] for r in summaries), 3)
                for key in ("throughput_ratio", "p99_ratio", "cpu_ratio")}
        report["cpu_ms_per_refresh"] = {
            name: {part: round(statistics.median(r["cpu"][name][part] for r in summaries), 3)
                   for part in ("app", "db", "total")} for name, *_ in apps}
        report["rounds"] = summaries
        self.report["yardstick"] = report

    @staticmethod
    def _yardstick_round(runs: dict) -> dict:
        baton, baton_app, baton_db = runs["baton"]
        summary: dict = {"cpu": {name: {"app": round(a, 3), "db": round(d, 3),
                                        "total": round(a + d, 3)}
                                 for name, (_, a, d) in runs.items()},
                         "per_s": {name: round(run.throughput, 1)
                                   for name, (run, _, _) in runs.items()},
                         "errors": {name: run.errors for name, (run, _, _) in runs.items()}}
        for against in ("equal", "minimal"):
            other, other_app, other_db = runs[against]
            summary[against] = {
                "throughput_ratio": round(baton.throughput / other.throughput, 3),
                "p99_ratio": round(baton.percentile(99) / other.percentile(99), 3),
                "cpu_ratio": round((baton_app + baton_db) / (other_app + other_db), 3)}
        return summary

    def sequential(self) -> None:
        n, rounds = (500 if self.args.quick else 2000), 3
        apps = self.apps()
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name, *_ in apps}
        for _ in range(rounds):  # alternating, so drift in the machine hits all alike
            for name, server, target, logins in apps:
                runs[name].append(self._sequential_cpu(server, target, logins(1)[0], n))
        report: dict = {"refreshes_per_run": n, "runs": rounds}
        for name, results in runs.items():
            app = statistics.median(r[0] for r in results)
            db = statistics.median(r[1] for r in results)
            report[name] = {"app_ms": round(app, 3), "db_ms": round(db, 3),
                            "total_ms": round(app + db, 3),
                            "totals": [round(a + d, 3) for a, d in results]}
        for against in ("equal", "minimal"):
            report[f"cpu_ratio_vs_{against}"] = round(
                report["baton"]["total_ms"] / report[against]["total_ms"], 3)
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

    def signin(self) -> None:
        """Full sign-ins one at a time (SPEC §13: the password and a PKCE challenge, a TOTP
        code, the code redeemed): server and database CPU per sign-in, and how much of it is
        the argon2 hash of the password, timed alone with the same parameters."""
        import pyotp

        from app.crypto import Passwords
        from app.services.signin.codes import s256

        users = self._signin_users()
        client = loadgen.Client(self.baton.url)
        base = "/v1/tenants/signin"

        def sign_in(username: str, secret: str) -> None:
            verifier = servers.random_secret()
            status, body = client.post(f"{base}/authorize-challenge", {
                "username": username, "password": "bench password",
                "code_challenge": s256(verifier), "code_challenge_method": "S256"})
            if status != 400 or body.get("error") != "insufficient_authorization":
                raise RuntimeError(f"challenge: {status} {body}")
            status, body = client.post(f"{base}/authorize-challenge", {
                "auth_session": body["auth_session"], "otp": pyotp.TOTP(secret).now()})
            if status != 200:
                raise RuntimeError(f"answer: {status} {body}")
            status, body = client.post(f"{base}/token", {
                "grant_type": "authorization_code", "code": body["authorization_code"],
                "code_verifier": verifier})
            if status != 200:
                raise RuntimeError(f"redeem: {status} {body}")

        sign_in(*users.pop())  # warm up
        started = time.monotonic()
        with servers.CpuMeter(self.baton.processes) as app, \
                servers.CpuMeter(servers.postgres_processes) as db:
            for username, secret in users:
                sign_in(username, secret)
        wall = time.monotonic() - started
        n = len(users)
        config = self._app().config
        passwords = Passwords(config["ARGON2_TIME_COST"], config["ARGON2_MEMORY_KIB"],
                              config["ARGON2_PARALLELISM"])
        digest = passwords.hash("bench password")
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        for _ in range(10):
            passwords.verify(digest, "bench password")
        argon2_cpu = (time.process_time() - cpu_started) / 10 * 1000
        argon2_wall = (time.perf_counter() - wall_started) / 10 * 1000
        app_ms, db_ms = app.seconds / n * 1000, db.seconds / n * 1000
        self.report["signin"] = {
            "sign_ins": n, "per_s_one_client": round(n / wall, 1),
            "ms_per_sign_in": round(wall / n * 1000, 1),
            "cpu_ms_per_sign_in": {"app": round(app_ms, 2), "db": round(db_ms, 2),
                                   "total": round(app_ms + db_ms, 2)},
            "argon2": {"time_cost": config["ARGON2_TIME_COST"],
                       "memory_kib": config["ARGON2_MEMORY_KIB"],
                       "parallelism": config["ARGON2_PARALLELISM"],
                       "cpu_ms_per_verify": round(argon2_cpu, 2),
                       "wall_ms_per_verify": round(argon2_wall, 2),
                       "share_of_app_cpu": round(argon2_cpu / app_ms, 3)},
        }

    def _signin_users(self) -> list[tuple[str, str]]:
        """Users of tenant `signin`, each with a confirmed TOTP factor; (username, secret)."""
        import pyotp

        from app.extensions import db
        from app.services.accounts import factors
        from app.services.accounts import users
        from app.services.audit import events
        from app.services.tenancy import tenants
        from app.services.tenancy.lookup import lookup_tenant
        from app.services.unit_of_work import transaction

        n = 10 if self.args.quick else 40
        app, now = self._app(), datetime.now(timezone.utc)
        made = []
        with app.app_context():
            tenants.create_tenant(tenants.TenantSettings("signin", "Sign-in"), now)
            for i in range(n + 1):
                user = users.create_user("signin", f"s{i}", "bench password", now)
                with transaction():
                    tenant = lookup_tenant("signin")
                    enrolment = factors.start_totp(tenant, user.id, f"s{i}", None, now)
                    factors.finish_totp(tenant, user.id, enrolment.id,
                                        pyotp.TOTP(enrolment.secret).at(now - timedelta(
                                            seconds=30)), now, events.CLI)
                made.append((f"s{i}", enrolment.secret))
            db.session.remove()
        return made

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
        self.equal.stop()
        self.engine.dispose()


SCENARIOS = ["yardstick", "sequential", "signin", "ceiling", "tabs", "purge", "table_size"]


def _describe(url: str) -> str:
    parsed = sa.engine.make_url(url)
    return "embedded (unix socket)" if parsed.query.get("host") else f"{parsed.host}:{parsed.port}"


def render(report: dict) -> str:
    lines = [f"# Baton benchmark, {report['started']}", "",
             f"Database: {report['database']}; args: {json.dumps(report['args'])}", ""]
    for name in ["yardstick", "sequential", "signin", "ceiling", "tabs", "table_size", "purge"]:
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
