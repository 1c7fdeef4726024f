"""Translate database faults into the service's own errors (SPEC §5: 503, never a hang)."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from contextlib import suppress
from typing import Any
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.sql.expression import ClauseElement

from app.extensions import db
from app.metrics import count_unavailable
from app.runtime import runtime
from app.services.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

# lock_not_available, query_canceled (statement_timeout), deadlock_detected,
# serialization_failure, admin_shutdown, crash_shutdown, cannot_connect_now
TRANSIENT_SQLSTATES = {"55P03", "57014", "40P01", "40001", "57P01", "57P02", "57P03"}


# read_only_sql_transaction: the server we are connected to no longer takes writes.
READ_ONLY_SQLSTATE = "25006"


@event.listens_for(Engine, "handle_error")
def _read_only_server_is_a_disconnect(context: ExceptionContext) -> None:
    """A write refused as read-only means this connection reached a standby (a primary being
    demoted in a failover or switchover). Treat it as a lost connection: SQLAlchemy drops the
    pool, the client gets 503, and the next connect picks the writable host of a multi-host
    DATABASE_URL (target_session_attrs=read-write) instead of asking the standby again."""
    if getattr(context.original_exception, "pgcode", None) == READ_ONLY_SQLSTATE:
        context.is_disconnect = True


def is_transient(exc: BaseException) -> bool:
    """True for errors that say 'try again later', not 'your request is wrong'."""
    if isinstance(exc, PoolTimeout):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated or isinstance(exc, OperationalError):
            return True
        return getattr(exc.orig, "pgcode", None) in TRANSIENT_SQLSTATES
    return False


@contextmanager
def transaction() -> Iterator[None]:
    """`with db.session.begin():`; transient database errors become DatabaseUnavailable."""
    try:
        with db.session.begin():
            yield
    except (DBAPIError, PoolTimeout) as exc:
        if not is_transient(exc):
            raise
        code = getattr(getattr(exc, "orig", None), "pgcode", None)
        log.warning("database unavailable sqlstate=%s error=%s", code, type(exc).__name__)
        count_unavailable(lock_timeout=code == "55P03")
        db.session.rollback()
        raise DatabaseUnavailable(runtime().retry_after_s) from None


class CursorStatement:
    """A Core statement run on the DBAPI cursor of the session's connection: the hot path.

    SQLAlchemy's execution path (cache key, compiled-cache lookup, execution context,
    result rows) costs, in a real request on the benchmark machine, about as much again as
    psycopg2's own execute; a refresh runs two statements (docs/performance.md). The
    statement is still built, and read, as Core (`select(...).with_for_update()`); it is
    compiled once per process (and dialect), and each execution keeps what the engine does:
    - the session's transaction: the cursor is the session's own connection's, so it runs
      inside `db.session.begin()` like any other statement;
    - the timeouts: the connection's cursor class adds the SET LOCALs (app/pgtimeouts.py);
    - the engine's cursor events (tests/test_refresh_cost.py counts statements with them),
      with a context object listeners may keep their state on (query recording, tracing
      agents); what a `retval=True` listener returns is not used here;
    - error handling, by the engine's own routine: the error is wrapped as a DBAPIError
      without parameters, `handle_error` listeners run (a read-only server is a lost
      connection), and a lost connection invalidates the pool. A listener's error takes
      the same way, and the cursor is always closed.
    No type processing runs on parameters or rows: callers pass and read plain DBAPI values
    (psycopg2 returns UUIDs, datetimes and memoryviews).
    """

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._sql: dict[tuple[type, str], str] = {}

    def fetchone(self, params: dict[str, Any]) -> tuple | None:
        with self._executed(params) as cursor:
            return cursor.fetchone()

    def rowcount(self, params: dict[str, Any]) -> int:
        with self._executed(params) as cursor:
            return cursor.rowcount

    @contextmanager
    def _executed(self, params: dict[str, Any]) -> Iterator[DBAPICursor]:
        conn = db.session.connection()
        sql = self._compiled(conn)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            try:
                self._run(conn, cursor, sql, params)
            except BaseException as exc:  # what the engine catches, exits included
                # SQLAlchemy's own handler (private, stable through 2.1; setup.cfg pins <2.2;
                # tests/test_cursor_statement.py and test_faults.py fail if it changes).
                conn._handle_dbapi_exception(exc, sql, params, cursor, None)
            yield cursor
        finally:
            with suppress(Exception):  # already closed, or its connection is gone
                cursor.close()

    @staticmethod
    def _run(conn: Connection, cursor: DBAPICursor, sql: str, params: dict[str, Any]) -> None:
        events = conn.dispatch
        if not (events.before_cursor_execute or events.after_cursor_execute):
            cursor.execute(sql, params)
            return
        context = ListenerContext(conn, cursor, sql, params)
        events.before_cursor_execute(conn, cursor, sql, params, context, False)
        cursor.execute(sql, params)
        events.after_cursor_execute(conn, cursor, sql, params, context, False)

    def _compiled(self, conn: Connection) -> str:
        key = (type(conn.dialect), conn.dialect.paramstyle)
        sql = self._sql.get(key)
        if sql is None:
            sql = self._sql[key] = str(self.statement.compile(dialect=conn.dialect))
        return sql


class ListenerContext:
    """The `context` cursor-event listeners get for a CursorStatement: there is no execution
    context, but listeners read the ExecutionContext's plain attributes and keep
    per-statement state on it (Flask-SQLAlchemy's query recording sets `_fsa_start_time`
    and reads `statement` and `parameters`, tracing agents keep their spans)."""

    executemany = False
    compiled = None
    isddl = False

    def __init__(self, connection: Connection, cursor: DBAPICursor, statement: str,
                 parameters: dict[str, Any]) -> None:
        self.connection = self.root_connection = connection
        self.cursor = cursor
        self.statement = statement
        self.parameters = [parameters]


# Driver messages of a failed connection → what an operator should check (CLI only: HTTP
# clients get the terse 503). Matched on text: psycopg2 gives connection errors no SQLSTATE.
CONNECTION_PROBLEMS = (
    ("does not exist", None),  # database or role: the server's own sentence says which
    ("password authentication failed", None),
    ("authentication failed", None),
    ("no password supplied", "authentication failed: no password supplied"),
    ("connection refused", "connection refused: is PostgreSQL running and listening there?"),
    ("could not translate host name", "unknown host name"),
    ("timeout expired", "connection timed out"),
)


def server_address(url: URL) -> str:
    """Where a URL points, for an operator: host:port, several for a multi-host URL, or the
    socket directory of a URL like the embedded database's (`?host=/path`)."""
    if url.host:
        return f"{url.host}:{url.port or 5432}"
    hosts = url.query.get("host")
    if hosts:
        return ",".join(hosts) if isinstance(hosts, tuple) else hosts
    return f"localhost:{url.port or 5432}"


def describe_database_problem(exc: BaseException | None) -> str | None:
    """One line saying why the database could not be used, or None if it is not that."""
    while exc is not None and not isinstance(exc, (DBAPIError, PoolTimeout)):
        exc = exc.__cause__ or exc.__context__
    if exc is None:
        return None
    if isinstance(exc, PoolTimeout):
        return "no database connection became free in time"
    where = f"database {db.engine.url.database!r} at {server_address(db.engine.url)}"
    text = str(getattr(exc, "orig", exc))
    for needle, explanation in CONNECTION_PROBLEMS:
        if needle in text.lower():
            # The server's FATAL line names the database or role; it never holds the password.
            detail = explanation or text.split("FATAL:", 1)[-1].strip().splitlines()[0]
            return f"cannot use {where}: {detail}"
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    return f"cannot use {where}: {type(exc).__name__} (SQLSTATE {code or 'none'})"
