"""The hot statements of a refresh, run on the DBAPI cursor of the session's connection.

SQLAlchemy's execution path (cache key, compiled-cache lookup, execution context, result
rows) costs about as much again as psycopg2's own execute (docs/performance.md), and a
refresh runs two statements. So these two are built as Core statements, compiled once per
process and dialect, and executed on the cursor of `db.session.connection()`, through
documented APIs only:
- the session's transaction: the cursor is the session's own connection's
  (`Connection.connection.dbapi_connection`), so it runs inside `db.session.begin()`;
- the timeouts: the connection's cursor class adds the SET LOCALs (app/database/timeouts.py);
- the engine's cursor events (`before_cursor_execute`, `after_cursor_execute`) fire as for
  any statement, with a context object listeners may keep their state on (query recording,
  tracing agents); what a `retval=True` listener returns is not used;
- errors become what the engine raises: `DBAPIError.instance(...)`, parameters hidden; a
  lost connection (`dialect.is_disconnect`, or a server that turned read-only in a
  failover, app/database/faults.py) invalidates the connection and disposes of the pool, as
  the engine does for a disconnect. (`handle_error` listeners other than Baton's own
  read-only rule do not run for these two statements.)
No type processing runs on parameters or rows: callers pass and read plain DBAPI values
(psycopg2 returns UUIDs, datetimes and memoryviews). tests/test_hot_statements.py pins all
of this.

Prepared (SPEC §12, BATON_DB_PREPARED_STATEMENTS, on by default): each statement is a
server-side prepared statement of its connection, SQL-level `PREPARE` (psycopg2 has no
protocol-level ones), made lazily: the first use on a connection sends `PREPARE …; EXECUTE …`
in one message, later ones `EXECUTE name(…)`, so PostgreSQL parses and plans it once per
connection. Which statements a connection has prepared is kept in its pool record's `info`
(SQLAlchemy clears it when the connection is invalidated or replaced), so a reconnect
prepares again. Behind a pooler that hands each transaction to another server connection
(PgBouncer before 1.21 in transaction mode) the setting must be off: then the statement text
is sent every time, as before.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from contextlib import suppress
from typing import Any
from typing import Iterator
from typing import cast

from flask import current_app
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from app.database.faults import is_read_only
from app.extensions import db

log = logging.getLogger(__name__)
PREPARED = "baton_prepared"  # the key, in a pool record's info, of its prepared statements
PARAMETER_STYLE = "numeric_dollar"  # PREPARE's placeholders: $1, $2 (a name reused keeps its)
UNKNOWN_STATEMENT = "26000"  # invalid_sql_statement_name: the server has no such statement
DUPLICATE_STATEMENT = "42P05"  # duplicate_prepared_statement: it has one of that name already


class HotStatement:
    """A Core statement executed on the session connection's DBAPI cursor, prepared on the
    server (`name`, its parameters' PostgreSQL `types`) unless the setting turns that off."""

    def __init__(self, statement: ClauseElement, name: str, types: dict[str, str]) -> None:
        self.statement = statement
        self.name = name
        self.types = types
        self._sql: dict[tuple[type, str], str] = {}
        self._prepared: dict[type, tuple[str, str, tuple[str, ...]]] = {}

    def fetchone(self, params: dict[str, Any]) -> tuple | None:
        """The first row, or None."""
        with self._executed(params) as cursor:
            return cursor.fetchone()

    def rowcount(self, params: dict[str, Any]) -> int:
        """How many rows the statement changed."""
        with self._executed(params) as cursor:
            return cursor.rowcount

    def sql(self, dialect: Dialect) -> str:
        """The statement's text for a dialect, compiled once."""
        key = (type(dialect), dialect.paramstyle)
        text = self._sql.get(key)
        if text is None:
            text = self._sql[key] = str(self.statement.compile(dialect=dialect))
        return text

    def prepared(self, dialect: Dialect) -> tuple[str, str, tuple[str, ...]]:
        """(PREPARE text, EXECUTE text with psycopg2 placeholders, parameter names in order)."""
        found = self._prepared.get(type(dialect))
        if found is None:
            numbered = type(dialect)(paramstyle=PARAMETER_STYLE)  # type: ignore[call-arg]
            compiled = cast(SQLCompiler, self.statement.compile(dialect=numbered))
            names = tuple(compiled.positiontup or ())
            order = list(dict.fromkeys(names))  # $n is the n-th distinct name
            types = ", ".join(self.types[name] for name in order)
            found = self._prepared[type(dialect)] = (
                f"PREPARE {self.name} ({types}) AS {compiled}",
                f"EXECUTE {self.name}({', '.join(['%s'] * len(order))})", tuple(order))
        return found

    @contextmanager
    def _executed(self, params: dict[str, Any]) -> Iterator[DBAPICursor]:
        conn = db.session.connection()
        dbapi_conn = conn.connection.dbapi_connection
        if dbapi_conn is None:  # only after an invalidation the session has not rolled back
            raise RuntimeError("the session's connection was invalidated; roll back first")
        sql, values = self._text(conn, params)
        cursor = dbapi_conn.cursor()
        try:
            try:
                _run(conn, cursor, sql, values)
            except conn.dialect.loaded_dbapi.Error as exc:
                if getattr(exc, "pgcode", None) in (UNKNOWN_STATEMENT, DUPLICATE_STATEMENT):
                    _lost_track(conn)  # DISCARD ALL, or a pooler's other server connection
                raise _translated(conn, exc, sql, values, cursor) from exc
            yield cursor
        finally:
            with suppress(Exception):  # already closed, or its connection is gone
                cursor.close()


    def _text(self, conn: Connection, params: dict[str, Any]) -> tuple[str, Any]:
        """What to send: the prepared statement's EXECUTE (after its PREPARE, the first time on
        this connection), or the statement itself when prepared statements are off."""
        if not current_app.config["DB_PREPARED_STATEMENTS"]:
            return self.sql(conn.dialect), params
        prepare, execute, order = self.prepared(conn.dialect)
        values = [params[name] for name in order]
        info = conn.connection.info
        done = info.get(PREPARED)
        if done is None:
            done = info[PREPARED] = set()
        if self.name in done:
            return execute, values
        # Marked before it runs: if it fails, the connection's transaction fails with it, and
        # an error that loses the connection clears `info`; one that keeps it (a timeout in
        # the EXECUTE) leaves the statement prepared, since PREPARE ran first.
        done.add(self.name)
        return f"{prepare}; {execute}", values




def _lost_track(conn: Connection) -> None:
    """The server's prepared statements are not the ones this connection prepared: a new
    server session (DISCARD ALL), or a pooler handing out another server connection. Forget
    them all: each is prepared again next time (a 503 until then, never a 500)."""
    global _warned
    if conn.connection.dbapi_connection is not None:
        conn.connection.info.pop(PREPARED, None)
    if not _warned:
        _warned = True
        log.warning("a prepared statement was missing or already there on the server: behind "
                    "a pooler in transaction mode (PgBouncer) set BATON_DB_PREPARED_STATEMENTS=0",
                    extra={"event": "prepared_statement_mismatch"})


_warned = False
def _run(conn: Connection, cursor: DBAPICursor, sql: str, params: Any) -> None:
    events = conn.dispatch
    if not (events.before_cursor_execute or events.after_cursor_execute):
        cursor.execute(sql, params)
        return
    context = ListenerContext(conn, cursor, sql, params)
    events.before_cursor_execute(conn, cursor, sql, params, context, False)
    cursor.execute(sql, params)
    events.after_cursor_execute(conn, cursor, sql, params, context, False)


def _translated(conn: Connection, exc: Any, sql: str, params: Any,
                cursor: DBAPICursor) -> DBAPIError:
    """The engine's exception for a DBAPI error; a lost connection is invalidated, and the
    pool's other connections (likely dead too: a restart, a failover) are disposed of."""
    dialect = conn.dialect
    lost = dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor) \
        or is_read_only(exc)
    # A DBAPI error (psycopg2.Error) is always wrapped as a DBAPIError subclass.
    wrapped = cast(DBAPIError, DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, hide_parameters=True,
        connection_invalidated=lost, dialect=dialect))
    if lost:
        conn.invalidate(exc)
        conn.engine.dispose()
    return wrapped


class ListenerContext:
    """The `context` cursor-event listeners get for a HotStatement: there is no execution
    context, but listeners read the ExecutionContext's plain attributes and keep
    per-statement state on it (Flask-SQLAlchemy's query recording sets `_fsa_start_time`
    and reads `statement` and `parameters`, tracing agents keep their spans)."""

    executemany = False
    compiled = None
    isddl = False

    def __init__(self, connection: Connection, cursor: DBAPICursor, statement: str,
                 parameters: Any) -> None:
        self.connection = self.root_connection = connection
        self.cursor = cursor
        self.statement = statement
        self.parameters = [parameters]
