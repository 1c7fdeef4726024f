"""pg_auto_failover as real processes: a monitor and data nodes, each a `pg_autoctl run`.

Everything lives in a Workspace (tests/topology.py) and runs as its service user: data
directories, pg_autoctl's configuration and state (XDG_* pointed into the workspace), and
the logs. Trust authentication and no SSL, on free ports of 127.0.0.1. pg_auto_failover
configures synchronous replication itself: with one secondary the primary runs
`synchronous_standby_names = 'ANY 1 (pgautofailover_standby_N)'`.
"""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from tests.failover_race import wait_until
from tests.plugins.live_server import free_port
from tests.topology import Workspace
from tests.topology import missing
from tests.topology import require_binary
from tests.topology import run_sql
from tests.topology import wait_for_port

# Failure detection tightened from the defaults (in brackets) so a test failover takes
# seconds rather than a minute. The monitor: health checks every 1 s [5 s] with a 1 s
# timeout [5 s] and one retry [2] after 0.5 s [2 s]; a primary whose keeper has not
# reported for 4 s [20 s] and fails its health check is failed over, and its standby is
# promoted once the old primary has had 5 s [30 s] to demote itself. Each keeper: a
# primary that reaches neither the monitor nor a standby for 3 s [20 s] demotes itself,
# which must happen before the monitor's demote timeout ends (no split brain).
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": 1000,
    "pgautofailover.health_check_timeout": 1000,
    "pgautofailover.health_check_max_retries": 1,
    "pgautofailover.health_check_retry_delay": 500,
    "pgautofailover.node_considered_unhealthy_timeout": 4000,
    "pgautofailover.primary_demote_timeout": 5000,
}
KEEPER_SETTINGS = {"timeout.network_partition_timeout": "3"}
# pg_autoctl sizes memory for a dedicated machine (a quarter of its RAM as shared_buffers);
# postgresql.auto.conf is read last, so these win. Three servers share the test machine.
SERVER_SETTINGS = "shared_buffers = '32MB'\neffective_cache_size = '256MB'\n" \
    "maintenance_work_mem = '32MB'\nwork_mem = '4MB'\n"
WRITABLE = ("primary", "wait_primary", "single")


def pg_autoctl_binary() -> str:
    return require_binary(shutil.which("pg_autoctl") or "/usr/bin/pg_autoctl",
                          "pg-auto-failover-cli")


def require_extension() -> None:
    """The monitor's extension, installed for the server of `pg_config` (pg_bindir's)."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        def ask(option: str) -> str:
            return subprocess.run([pg_config, option], capture_output=True,
                                  text=True).stdout.strip()
        control = Path(ask("--sharedir"), "extension", "pgautofailover.control")
        if control.exists():
            return
        major = ask("--version").split()[1].split(".")[0]  # "PostgreSQL 15.20 (...)"
        missing(f"postgresql-{major}-auto-failover")
    missing("postgresql-15-auto-failover")


@dataclass
class Node:
    name: str
    port: int
    pgdata: Path
    process: subprocess.Popen | None = None


class AutoFailover:
    """A pg_auto_failover formation: `create_monitor()`, then `add_node()` per data node."""

    def __init__(self, ws: Workspace, bindir: Path, dbname: str) -> None:
        self.ws, self.bindir, self.dbname = ws, bindir, dbname
        self.binary = pg_autoctl_binary()
        require_extension()
        xdg = ws.root / "xdg"
        self.env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(ws.root),
                    "LANG": "C.UTF-8", "XDG_CONFIG_HOME": str(xdg / "config"),
                    "XDG_DATA_HOME": str(xdg / "data"), "XDG_RUNTIME_DIR": str(xdg / "run")}
        self.superuser = ws.user or getpass.getuser()  # initdb names it after the OS user
        self.monitor = Node("monitor", free_port(), ws.root / "monitor")
        self.nodes: dict[str, Node] = {}

    # -- pg_autoctl ---------------------------------------------------------------------------

    def autoctl(self, *args: str, timeout: float = 120) -> str:
        proc = self.ws.popen([self.binary, *args], env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args)} failed:\n{out}")
        return out

    def _small(self, node: Node) -> None:
        with open(node.pgdata / "postgresql.auto.conf", "a") as conf:
            conf.write(SERVER_SETTINGS)

    def _run(self, node: Node) -> None:
        """`pg_autoctl run` of a node: its keeper, which starts and supervises postgres."""
        with open(self.ws.root / f"{node.name}.log", "ab") as log:
            node.process = self.ws.popen([self.binary, "run", "--pgdata", str(node.pgdata)],
                                         env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log = self.ws.root / f"{node.name}.log"
        wait_for_port(node.port, node.process, log, f"pg_autoctl run ({node.name})", timeout=60)
        wait_until(lambda: self.answers(node.name), 60,
                   f"postgres of {node.name} to accept queries")

    def answers(self, name: str) -> bool:
        """True if the node's postgres accepts a query (as a primary or a hot standby)."""
        try:
            self.execute(self.nodes.get(name, self.monitor).port, "postgres", "SELECT 1")
        except psycopg2.OperationalError:  # starting up, or in crash recovery
            return False
        return True

    @property
    def monitor_uri(self) -> str:
        return (f"postgres://autoctl_node@127.0.0.1:{self.monitor.port}/pg_auto_failover"
                "?sslmode=disable")

    def create_monitor(self) -> None:
        pgdata = str(self.monitor.pgdata)
        self.autoctl("create", "monitor", "--pgdata", pgdata, "--pgport",
                     str(self.monitor.port), "--hostname", "127.0.0.1", "--auth", "trust",
                     "--no-ssl", "--pgctl", str(self.bindir / "pg_ctl"))
        self.autoctl("config", "set", "--pgdata", pgdata, "postgresql.listen_addresses",
                     "127.0.0.1")
        self._small(self.monitor)
        self._run(self.monitor)
        for name, value in MONITOR_SETTINGS.items():
            self.execute(self.monitor.port, "pg_auto_failover",
                         f"ALTER SYSTEM SET {name} = {value}")
        self.execute(self.monitor.port, "pg_auto_failover", "SELECT pg_reload_conf()")

    def add_node(self, name: str) -> Node:
        """A data node: the first one becomes the primary, the next a secondary of it."""
        node = Node(name, free_port(), self.ws.root / name)
        self.autoctl("create", "postgres", "--pgdata", str(node.pgdata), "--pgport",
                     str(node.port), "--listen", "127.0.0.1", "--hostname", "127.0.0.1",
                     "--name", name, "--dbname", self.dbname, "--auth", "trust", "--no-ssl",
                     "--pgctl", str(self.bindir / "pg_ctl"), "--monitor", self.monitor_uri)
        for key, value in KEEPER_SETTINGS.items():
            self.autoctl("config", "set", "--pgdata", str(node.pgdata), key, value)
        self.nodes[name] = node
        self._small(node)
        self._run(node)
        return node

    # -- state --------------------------------------------------------------------------------

    def execute(self, port: int, dbname: str, sql: str) -> list[tuple]:
        return run_sql(f"host=127.0.0.1 port={port} user={self.superuser} dbname={dbname}", sql)

    def states(self) -> dict[str, tuple[str, str]]:
        """Each node's (reported state, goal state), as the monitor sees them."""
        rows = self.execute(self.monitor.port, "pg_auto_failover",
                            "SELECT nodename, reportedstate, goalstate FROM pgautofailover.node")
        return {name: (str(reported), str(goal)) for name, reported, goal in rows}

    def wait_for(self, expected: dict[str, str], timeout: float = 60) -> None:
        """Until each named node has reached (reported and been assigned) its state."""
        wait_until(lambda: all(self.states().get(name) == (state, state)
                               for name, state in expected.items()),
                   timeout, f"states {expected} (now {self.states()})", every=0.2)

    def primary(self) -> str:
        """The node the monitor has settled as the writable one."""
        return next(name for name, (reported, goal) in self.states().items()
                    if reported == goal and reported in WRITABLE)

    def sync_standbys(self) -> list[tuple]:
        """The primary's synchronous standbys (pg_stat_replication, sync or quorum)."""
        port = self.nodes[self.primary()].port
        return self.execute(port, "postgres", "SELECT application_name, sync_state FROM"
                            " pg_stat_replication WHERE sync_state IN ('sync', 'quorum')")

    def url(self) -> str:
        """The multi-host DATABASE_URL of SPEC §12, every data node in creation order."""
        hosts = "&".join(f"host=127.0.0.1:{node.port}" for node in self.nodes.values())
        return (f"postgresql+psycopg2://{self.superuser}@/{self.dbname}?{hosts}"
                "&target_session_attrs=read-write")

    # -- failures -----------------------------------------------------------------------------

    def perform_failover(self) -> None:
        """`pg_autoctl perform failover`: a switchover the monitor orchestrates and waits for."""
        self.autoctl("perform", "failover", "--pgdata", str(self.monitor.pgdata))

    def kill(self, name: str) -> None:
        """The node dies at once, as when its machine does: SIGKILL to its keeper and its
        postgres (one process group), so only the monitor can act. (Killing only postgres
        is `kill_postgres`: the keeper restarts it within a second or two, and the monitor,
        told by the keeper that postgres is down, may fail over all the same.)"""
        node = self.nodes[name]
        assert node.process is not None
        postmaster = int((node.pgdata / "postmaster.pid").read_text().split()[0])
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait(10)
        wait_until(lambda: not _alive(postmaster), 10, f"postgres of {name} to die")

    def kill_postgres(self, name: str) -> None:
        """Only the node's postgres dies (SIGKILL to the postmaster); its keeper lives on."""
        postmaster = int((self.nodes[name].pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGKILL)
        wait_until(lambda: not _alive(postmaster), 10, f"postgres of {name} to die")

    def restart(self, name: str) -> None:
        """Start a node's keeper again (after kill): it rejoins as it sees fit."""
        self._run(self.nodes[name])

    def stop(self) -> None:
        """Stop every keeper (each stops its postgres, fast), data nodes first."""
        for node in [*self.nodes.values(), self.monitor]:
            if node.process and node.process.poll() is None:
                node.process.terminate()
        for node in [*self.nodes.values(), self.monitor]:
            if node.process and node.process.poll() is None:
                try:
                    node.process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(node.process.pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
