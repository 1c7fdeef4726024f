"""The database's share of a rotation: Baton's two statements against the yardstick's SQL.

`python -m bench.db_cost [--clients N] [--seconds S] [--rounds R]` runs the transactions
of a refresh with raw psycopg2 from N processes (no Flask, no SQLAlchemy at run time) on a
fresh bench database, and reports the CPU of every `postgres` process per transaction:

  yardstick      SELECT … FOR UPDATE, UPDATE, INSERT (bench/minimal_app.py)
  baton          Baton's statements as the app sends them: the SET LOCAL timeouts and the
                 locking SELECT in one message, then the rotation statement
  baton-lock     the first message alone (what SPEC §5's lock costs by itself)
  baton-prepared the same two statements as server-side prepared statements: what parsing
                 and planning cost (not shippable behind PgBouncer 1.18 in transaction mode,
                 docs/deployment.md; shown to size that cost)
  baton-two-trips  baton-prepared in two round trips instead of four: `BEGIN` travels with
                 the lock, `COMMIT` with the rotation (an autocommit connection; sized, not
                 shipped: the rotation's row count is lost behind the COMMIT, so the next
                 lock, which must find the successor, is the check)

The SQL is compiled from the app's own statement constants, so this measures what ships.
Rounds alternate the variants; each figure is the median of its rounds. Besides CPU, each
variant reports the WAL it writes and the MultiXact ids it makes per transaction (counted
over the run: immune to the machine's noise); `--variants` picks some.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import secrets
import statistics
import sys
import time
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import psycopg2

from bench import servers

_CTX = mp.get_context("fork")
VARIANTS = ("yardstick", "baton", "baton-lock", "baton-prepared", "baton-two-trips",
            "baton-function", "baton-three")

THREE = ("UPDATE refresh_tokens SET rotated_at = %(now)s WHERE id = %(token_id)s; "
         "INSERT INTO refresh_tokens (tenant_id, session_id, parent_id, digest, created_at,"
         " expires_at) VALUES (%(tenant_id)s, %(session_id)s, %(token_id)s, %(successor_digest)s,"
         " %(now)s, %(successor_expires_at)s); "
         "UPDATE sessions SET last_used_at = %(now)s, current_token_id = lastval()"
         " WHERE id = %(session_id)s AND current_token_id = %(token_id)s")

# The rotation as a PL/pgSQL function (its plans are cached per backend, so it is planned
# once per connection even behind a transaction pooler): sized here, not shipped.
ROTATE_FUNCTION = """
CREATE OR REPLACE FUNCTION bench_rotate(p_token_id bigint, p_now timestamptz,
                                        p_digest bytea, p_expires_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_session uuid; v_tenant bigint; v_new bigint;
BEGIN
  UPDATE refresh_tokens SET rotated_at = p_now WHERE id = p_token_id
    RETURNING session_id, tenant_id INTO v_session, v_tenant;
  INSERT INTO refresh_tokens (tenant_id, session_id, parent_id, digest, created_at, expires_at)
    VALUES (v_tenant, v_session, p_token_id, p_digest, p_now, p_expires_at)
    RETURNING id INTO v_new;
  UPDATE sessions SET last_used_at = p_now, current_token_id = v_new
    WHERE id = v_session AND current_token_id = p_token_id;
  RETURN CASE WHEN FOUND THEN v_new END;
END $$"""


def baton_sql(app) -> tuple[str, str, str]:
    """(timeout prefix, lock statement, rotation statement) in psycopg2's paramstyle, as the
    app's engine sends them (config.engine_options builds the same prefix)."""
    from sqlalchemy.dialects import postgresql

    from app.database.timeouts import timeout_prefix
    from app.services.tokens.family import LOCK_TOKEN
    from app.services.tokens.rotation import ROTATE

    dialect = postgresql.psycopg2.dialect()  # type: ignore[attr-defined]
    prefix = timeout_prefix(app.config["LOCK_TIMEOUT_MS"], app.config["STATEMENT_TIMEOUT_MS"],
                            60000)
    return prefix, LOCK_TOKEN.sql(dialect), ROTATE.sql(dialect)


_statements: tuple[str, str, str] = ("", "", "")  # set before the clients fork


def _prepared(statement: str, name: str, params: list[tuple[str, str]]) -> tuple[str, str]:
    """PREPARE text and its EXECUTE for a pyformat statement."""
    body = statement
    for i, (param, _) in enumerate(params, 1):
        body = body.replace(f"%({param})s", f"${i}")
    types = ", ".join(t for _, t in params)
    execute = ", ".join(f"%({p})s" for p, _ in params)
    return f"PREPARE {name}({types}) AS {body}", f"EXECUTE {name}({execute})"


def _variant_statements(conn, variant: str) -> tuple[str, str, str]:
    """(timeout prefix, lock, rotation) as VARIANT sends them, prepared on CONN if it prepares."""
    prefix, lock, rotate = _statements
    if variant in ("baton-prepared", "baton-two-trips"):
        prepare_lock, lock = _prepared(lock, "baton_lock", [("tenant_id", "bigint"),
                                                            ("digest", "bytea")])
        prepare_rotate, rotate = _prepared(rotate, "baton_rotate", [
            ("now", "timestamptz"), ("token_id", "bigint"), ("successor_digest", "bytea"),
            ("successor_expires_at", "timestamptz")])
        with conn.cursor() as cur:
            cur.execute(prepare_lock)
            cur.execute(prepare_rotate)
        conn.commit()
    if variant == "baton-two-trips":
        prefix, rotate = "BEGIN; " + prefix, rotate + "; COMMIT"
    if variant == "baton-three":
        rotate = THREE
    if variant == "baton-function":
        rotate = ("SELECT bench_rotate(%(token_id)s, %(now)s, %(successor_digest)s,"
                  " %(successor_expires_at)s)")
    return prefix, lock, rotate


def _baton_client(url, variant, tenant_id, digest, seconds, barrier, out) -> None:
    conn = psycopg2.connect(url)
    two_trips = variant == "baton-two-trips"
    conn.autocommit = two_trips
    prefix, lock, rotate = _variant_statements(conn, variant)
    cur = conn.cursor()
    count = 0
    barrier.wait()
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        cur.execute(prefix + lock, {"tenant_id": tenant_id, "digest": digest})
        row = cur.fetchone()
        if row is None:
            raise RuntimeError("the lock found no token: the last rotation did not commit")
        token_id = row[0]
        if variant != "baton-lock":
            successor, now = secrets.token_bytes(32), datetime.now(timezone.utc)
            cur.execute(rotate, {"now": now, "token_id": token_id, "successor_digest": successor,
                                 "successor_expires_at": now + timedelta(days=14),
                                 "tenant_id": tenant_id, "session_id": row[3]})
            # Two trips: the result is the COMMIT's; the next lock checks the rotation.
            if not two_trips and (cur.rowcount != 1 or (variant == "baton-function"
                                                        and cur.fetchone()[0] is None)):
                raise RuntimeError("the rotation updated no session")
            digest = successor
        if not two_trips:
            conn.commit()
        count += 1
    out.put((count, time.process_time() - cpu))
    barrier.wait()  # keep the backend until the meter has read it
    conn.close()


def _yardstick_client(url, variant, _tenant_id, digest, seconds, barrier, out) -> None:
    conn = psycopg2.connect(url)
    cur = conn.cursor()
    count = 0
    barrier.wait()
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        cur.execute("SELECT id, rotated_at FROM mini_tokens WHERE digest = %s FOR UPDATE",
                    (digest,))
        token_id = cur.fetchone()[0]
        successor = secrets.token_bytes(32)
        cur.execute("UPDATE mini_tokens SET rotated_at = now() WHERE id = %s", (token_id,))
        cur.execute("INSERT INTO mini_tokens (digest, parent_id, created_at)"
                    " VALUES (%s, %s, now())", (successor, token_id))
        conn.commit()
        digest = successor
        count += 1
    out.put((count, time.process_time() - cpu))
    barrier.wait()
    conn.close()


def _chains(url: str, variant: str, clients: int) -> tuple[int, list[bytes]]:
    """One fresh chain per client: (tenant id, first digests)."""
    from bench.minimal_app import SCHEMA

    digests = [secrets.token_bytes(32) for _ in range(clients)]
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        if variant == "yardstick":
            cur.execute(SCHEMA)
            for digest in digests:
                cur.execute("INSERT INTO mini_tokens (digest, created_at) VALUES (%s, now())",
                            (digest,))
            return 0, digests
        cur.execute(ROTATE_FUNCTION)
        cur.execute("SELECT t.id, u.id FROM tenants t JOIN users u ON u.tenant_id = t.id"
                    " ORDER BY t.id, u.id LIMIT 1")
        tenant_id, user_id = cur.fetchone()
        for digest in digests:
            session_id = str(uuid.uuid4())
            cur.execute("INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at,"
                        " expires_at, auth_time)"
                        " VALUES (%s, %s, %s, now(), now(), now() + interval '30d', now())",
                        (session_id, tenant_id, user_id))
            cur.execute("INSERT INTO refresh_tokens (tenant_id, session_id, digest, created_at,"
                        " expires_at) VALUES (%s, %s, %s, now(), now() + interval '14d')"
                        " RETURNING id", (tenant_id, session_id, digest))
            cur.execute("UPDATE sessions SET current_token_id = %s WHERE id = %s",
                        (cur.fetchone()[0], session_id))
    return tenant_id, digests


COUNTERS = ("SELECT pg_current_wal_lsn(),"
            " mxid_age(datminmxid) FROM pg_database WHERE datname = current_database()")


def _counters(url: str) -> tuple[str, int]:
    """(the WAL position, how many MultiXact ids were handed out so far): the WAL written and
    the MultiXacts made (a row share-locked by two transactions at once, such as a foreign
    key's KEY SHARE on one hot tenant row) are counted across a run, not sampled."""
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(COUNTERS)
        lsn, multixacts = cur.fetchone()
    conn.close()
    return lsn, int(multixacts)


def _wal_bytes(url: str, start: str, end: str) -> int:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_wal_lsn_diff(%s, %s)", (end, start))
        value = int(cur.fetchone()[0])
    conn.close()
    return value


def run_variant(url: str, variant: str, clients: int, seconds: float) -> dict:
    tenant_id, digests = _chains(url, variant, clients)
    client = _yardstick_client if variant == "yardstick" else _baton_client
    barrier, out = _CTX.Barrier(clients + 1), _CTX.Queue()
    procs = [_CTX.Process(target=client, args=(url, variant, tenant_id, d, seconds, barrier, out))
             for d in digests]
    for proc in procs:
        proc.start()
    lsn, multixacts = _counters(url)
    with servers.CpuMeter(servers.postgres_processes) as meter:
        barrier.wait(120)
        results = [out.get(timeout=seconds + 60) for _ in procs]
    total, client_cpu = sum(r[0] for r in results), sum(r[1] for r in results)
    barrier.wait(60)
    end_lsn, end_multixacts = _counters(url)
    for proc in procs:
        proc.join(30)
    return {"per_s": round(total / seconds, 1),
            "db_cpu_ms": round(meter.seconds / total * 1000, 3),
            "client_cpu_ms": round(client_cpu / total * 1000, 3),
            "wal_bytes": round(_wal_bytes(url, lsn, end_lsn) / total),
            "multixacts": round((end_multixacts - multixacts) / total, 3)}


def measure(url: str, clients: int, seconds: float, rounds: int,
            variants: tuple[str, ...] = VARIANTS) -> dict:
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant in variants:
            runs[variant].append(run_variant(url, variant, clients, seconds))
    report = {}
    for variant, results in runs.items():
        cpu = [r["db_cpu_ms"] for r in results]
        report[variant] = {"db_cpu_ms": round(statistics.median(cpu), 3), "runs": cpu,
                           "per_s": round(statistics.median(r["per_s"] for r in results), 1),
                           "client_cpu_ms": statistics.median(r["client_cpu_ms"] for r in results),
                           "wal_bytes": statistics.median(r["wal_bytes"] for r in results),
                           "multixacts": statistics.median(r["multixacts"] for r in results)}
    base = report["yardstick"]["db_cpu_ms"] if "yardstick" in report else None
    for variant in variants:
        report[variant]["x_yardstick"] = (round(report[variant]["db_cpu_ms"] / base, 2)
                                          if base else None)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.db_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", nargs="*", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args()
    from bench.profile_refresh import make_app

    global _statements
    _statements = baton_sql(make_app())  # on a fresh bench database with a tenant and a user
    url = servers.with_database(servers.server_url(), servers.BENCH_DB)
    report = measure(url, args.clients, args.seconds, args.rounds, tuple(args.variants))
    width = max(map(len, VARIANTS))
    print(f"database work per transaction, {args.clients} clients, median of {args.rounds}:")
    for variant, row in report.items():
        ratio = f"{row['x_yardstick']:.2f}x the yardstick; " if row["x_yardstick"] else ""
        print(f"  {variant:<{width}}  {row['db_cpu_ms']:.3f} ms CPU  ({ratio}{row['per_s']:.0f}/s;"
              f" runs {row['runs']}), client {row['client_cpu_ms']:.3f} ms CPU,"
              f" {row['wal_bytes']:.0f} WAL bytes,"
              f" {row['multixacts']:.3f} MultiXacts")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
