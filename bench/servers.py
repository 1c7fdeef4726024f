"""The benchmark's moving parts: a fresh database, gunicorn servers, CPU accounting, pgbench."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import psycopg2_url  # noqa: E402

BENCH_DB = "baton_bench"


def server_url() -> str:
    """BENCH_SERVER_URL (a server, no database part), else the embedded PostgreSQL."""
    url = os.environ.get("BENCH_SERVER_URL")
    if url:
        return url.rstrip("/")
    from app.embedded_db import embedded_database_url

    embedded = embedded_database_url(str(ROOT / "instance" / "bench-pgdata"))
    return embedded.replace("postgresql+psycopg2://", "postgresql://").replace("/postgres?", "/?")


def with_database(url: str, name: str) -> str:
    parsed = sa.engine.make_url(url)
    return parsed.set(database=name).render_as_string(hide_password=False)


def recreate_database(url: str) -> str:
    """Drop and create the bench database; returns its URL."""
    admin = sa.create_engine(psycopg2_url(with_database(url, "postgres")),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)"))
        conn.execute(sa.text(f"CREATE DATABASE {BENCH_DB}"))
    admin.dispose()
    return with_database(url, BENCH_DB)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """A gunicorn serving `app_path` with `workers` sync workers on a free loopback port."""

    def __init__(self, app_path: str, env: dict, workers: int = 4) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (ROOT / "instance").mkdir(exist_ok=True)  # a fresh checkout has none yet
        self.log = open(ROOT / "instance" / f"bench-{app_path.split(':')[0]}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--workers",
             str(workers), "--bind", f"127.0.0.1:{self.port}", "--keep-alive", "60", app_path],
            cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited; see {self.log.name}")
            try:
                requests.get(self.url + "/healthz", timeout=2)
                return
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError("gunicorn did not start")

    def processes(self) -> list[psutil.Process]:
        parent = psutil.Process(self.proc.pid)
        return [parent, *parent.children(recursive=True)]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


def postgres_processes() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


class CpuMeter:
    """CPU seconds (user + system) used between enter and exit by the processes that
    `processes()` lists at either end (a process started in between counts whole)."""

    def __init__(self, processes) -> None:
        self.processes = processes

    @staticmethod
    def _times(procs) -> dict[int, float]:
        times = {}
        for proc in procs:
            try:
                cpu = proc.cpu_times()
                times[proc.pid] = cpu.user + cpu.system
            except psutil.NoSuchProcess:
                pass
        return times

    def __enter__(self):
        self.before = self._times(self.processes())
        return self

    def __exit__(self, *exc) -> None:
        after = self._times(self.processes())
        self.seconds = sum(t - self.before.get(pid, 0.0) for pid, t in after.items())


def pgbench(url: str, script: Path, clients: int, seconds: int, variables: dict) -> dict:
    """Run pgbench with the rotation script; returns transactions per second and latency."""
    binary = shutil.which("pgbench") or _bundled_pgbench()
    parsed = sa.engine.make_url(url)
    env = {**os.environ, "PGHOST": parsed.query.get("host") or parsed.host or "127.0.0.1",
           "PGPORT": str(parsed.port or 5432), "PGUSER": parsed.username or "postgres",
           "PGDATABASE": parsed.database}
    args = [binary, "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", str(script),
            "-M", "prepared", "-r"]
    for name, value in variables.items():
        args += ["-D", f"{name}={value}"]
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout
    tps = next(float(line.split("=")[1].split()[0]) for line in out.splitlines()
               if line.startswith("tps"))
    latency = next(float(line.split("=")[1].split()[0]) for line in out.splitlines()
                   if line.startswith("latency average"))
    return {"clients": clients, "per_s": round(tps, 1), "latency_avg_ms": latency}


def _bundled_pgbench() -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "pgbench")


def random_secret() -> str:
    return secrets.token_urlsafe(48)
