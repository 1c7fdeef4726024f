"""Real server processes for the topology tests: PostgreSQL clusters, PgBouncer, nginx,
pg_auto_failover, gunicorn.

Everything runs in a temporary directory as an unprivileged user when the suite runs as
root (CI does): initdb, postgres and pgbouncer refuse to run as root, and nginx and
pg_autoctl are started as that user too.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from typing import NoReturn

import psycopg2
import pytest

from tests.helpers import PROJECT_ROOT
from tests.plugins.live_server import free_port
from tests.plugins.live_server import gunicorn  # noqa: F401  (the topology tests' server)
from tests.plugins.secret_leaks import SERVER_LOGS


def run_sql(dsn: str, sql: str) -> list[tuple]:
    """One statement on its own autocommit connection; its rows (none for a command)."""
    conn = psycopg2.connect(dsn, connect_timeout=5)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def missing(package: str) -> NoReturn:
    """A skip on a developer's machine; in CI (CI=true) a failure."""
    reason = f"{package} is not installed (CI installs it; apt-get install -y {package})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def require_binary(path: str | None, what: str) -> str:
    """The binary, or a skip on a developer's machine; in CI (CI=true) a missing one fails."""
    if path and os.access(path, os.X_OK):
        return path
    missing(what)


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, what: str,
                  timeout: float = 15) -> None:
    """Until 127.0.0.1:port accepts a connection; RuntimeError with the log if `proc` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited:\n{log.read_text() if log.exists() else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not start listening on port {port}")


def pg_bindir() -> Path:
    """The server binaries: the system's (`pg_config --bindir`), else the embedded wheel's."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        bindir = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                check=True).stdout.strip()
        if os.access(os.path.join(bindir, "initdb"), os.X_OK):
            return Path(bindir)
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "initdb"
    return Path(require_binary(str(bundled), "postgresql (server binaries)")).parent


def pgbouncer_binary() -> str:
    return require_binary(shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", "pgbouncer")


def _service_user() -> str | None:
    """Who runs the servers: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "pgserver"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    from pgserver.utils import ensure_user_exists  # the embedded database's own helper

    ensure_user_exists("pgserver")
    return "pgserver"


class Workspace:
    """A temporary directory owned by the service user, removed at the end."""

    def __init__(self) -> None:
        self.user = _service_user()
        self.root = Path(tempfile.mkdtemp(prefix="baton-topology-"))
        self.root.chmod(0o755)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    def command(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.user, "--", *args] if self.user else list(args)

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen:
        """A long-running server as the service user, in a session of its own (so it and
        everything it starts can be signalled together)."""
        if self.user:
            entry = pwd.getpwnam(self.user)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        return subprocess.Popen(args, cwd=self.root, start_new_session=True, **kwargs)

    def write(self, name: str, text: str, mode: int = 0o644) -> Path:
        """A file in the workspace that the service user can read."""
        path = self.root / name
        path.write_text(text)
        path.chmod(mode)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        return path

    def run(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(self.command(*args), capture_output=True, text=True,
                                timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Cluster:
    """One PostgreSQL server (a primary or a standby) on a TCP port of 127.0.0.1."""

    def __init__(self, ws: Workspace, name: str, bindir: Path) -> None:
        self.ws, self.bindir = ws, bindir
        self.datadir = ws.root / name
        self.port = free_port()
        self.log = ws.root / f"{name}.log"

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def init(self) -> None:
        self.ws.run(self._bin("initdb"), "-D", str(self.datadir), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--no-sync")
        self._configure()

    def base_backup_of(self, primary: "Cluster") -> None:
        """A streaming standby of `primary` (-R writes standby.signal and primary_conninfo;
        -c fast: checkpoint now instead of spreading it over minutes)."""
        self.ws.run(self._bin("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port),
                    "-U", "postgres", "-D", str(self.datadir), "-R", "-X", "stream",
                    "-c", "fast", "--no-sync")
        self._configure()

    def _configure(self) -> None:
        with open(self.datadir / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.datadir}'\n"
                "fsync = off\nshared_buffers = 16MB\nmax_connections = 60\n"
                "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
                "wal_receiver_status_interval = 1s\nwal_retrieve_retry_interval = 500ms\n"
            )

    def start(self) -> None:
        self.ws.run(self._bin("pg_ctl"), "-D", str(self.datadir), "-l", str(self.log),
                    "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self.ws.run(self._bin("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def stop_quietly(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            subprocess.run(self.ws.command(self._bin("pg_ctl"), "-D", str(self.datadir), "-m",
                                           "immediate", "-w", "stop"), capture_output=True)

    def promote(self) -> None:
        self.ws.run(self._bin("pg_ctl"), "-D", str(self.datadir), "-w", "promote")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{dbname}"

    def execute(self, sql: str, dbname: str = "postgres") -> list[tuple]:
        return run_sql(self.dsn(dbname), sql)


class PgBouncer:
    """PgBouncer in transaction pooling mode in front of one cluster, configured the way
    most deployments are: startup `options` ignored, not passed through."""

    def __init__(self, ws: Workspace, cluster: Cluster, dbname: str) -> None:
        self.ws, self.binary = ws, pgbouncer_binary()
        self.port = free_port()
        self.ini = ws.root / "pgbouncer.ini"
        self.log = ws.root / "pgbouncer.log"
        users = ws.root / "userlist.txt"
        users.write_text('"postgres" ""\n')
        self.ini.write_text(
            "[databases]\n"
            f"{dbname} = host=127.0.0.1 port={cluster.port} dbname={dbname} user=postgres\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {users}\n"
            "pool_mode = transaction\ndefault_pool_size = 8\nmax_client_conn = 200\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.log}\npidfile = {ws.root / 'pgbouncer.pid'}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = [self.binary, str(self.ini)]
        if self.ws.user:
            args = [self.binary, "-u", self.ws.user, str(self.ini)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, self.log, "pgbouncer")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{dbname}"


def nginx_binary() -> str:
    return require_binary(shutil.which("nginx") or "/usr/sbin/nginx", "nginx")


def nginx_site(upstream_port: int, listen_port: int, cert: Path, key: Path) -> str:
    """deploy/nginx.conf with only its addresses and certificate paths replaced; each
    replaced text must occur as often as expected, so the test never runs something else."""
    site = (PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
    for old, new, count in [
        ("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};", 1),
        ("listen 443 ssl", f"listen 127.0.0.1:{listen_port} ssl", 2),
        ("/etc/ssl/certs/auth.example.com.pem", str(cert), 1),
        ("/etc/ssl/private/auth.example.com.key", str(key), 1),
    ]:
        assert site.count(old) == count, f"deploy/nginx.conf: expected {count} x {old!r}"
        site = site.replace(old, new)
    return site


class Nginx:
    """nginx in the foreground (`daemon off`) serving one site file; its pid file, logs
    and temporary files in the workspace. Logs join the whole-run secret-leak check."""

    def __init__(self, ws: Workspace, site: str, port: int, log_dir: Path) -> None:
        self.ws, self.binary, self.port, self.log_dir = ws, nginx_binary(), port, log_dir
        self.error_log, self.access_log = ws.root / "nginx-error.log", ws.root / "nginx-access.log"
        site_file = ws.write("baton-site.conf", site)
        temp = "".join(f"    {kind}_temp_path {ws.root / ('nginx-' + kind)};\n"
                       for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        self.conf = ws.write("nginx.conf", (
            f"daemon off;\nworker_processes 1;\npid {ws.root / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 512; }\n"
            "http {\n"
            f"    access_log {self.access_log};\n{temp}"
            f"    include {site_file};\n"
            "}\n"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = self.ws.popen([self.binary, "-p", f"{self.ws.root}/", "-e",
                                   str(self.error_log), "-c", str(self.conf)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.proc, self.error_log, "nginx")

    def stop(self) -> None:
        """Stop nginx; its logs are kept in `log_dir` for the leak check (the workspace goes)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: nginx's fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for log in (self.error_log, self.access_log):
            if log.exists():
                kept = self.log_dir / f"{log.stem}-{self.port}.log"
                shutil.copyfile(log, kept)
                SERVER_LOGS.append(kept)


def self_signed_certificate(ws: Workspace, host: str) -> tuple[Path, Path]:
    """A certificate for `host` (and its key) that a client can pin as its only CA."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = ws.write("server.pem", cert.public_bytes(serialization.Encoding.PEM).decode())
    key_path = ws.write("server.key", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode(), mode=0o600)
    return cert_path, key_path


def conformance(base: str, tenant: str, username: str, password: str,
                *extra: str) -> subprocess.CompletedProcess:
    """Run the installed `baton-conformance` with no server settings in its environment."""
    script = Path(sys.executable).parent / "baton-conformance"
    assert script.exists(), "baton-conformance is not installed: pip install -e ."
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "DATABASE_URL", "BATON_ENV", "TEST_DATABASE_URL")}
    return subprocess.run([str(script), base, "--tenant", tenant, "--username", username,
                           "--password-stdin", *extra], input=password + "\n",
                          capture_output=True, text=True, env=env, timeout=300)
