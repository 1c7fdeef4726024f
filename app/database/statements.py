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
"""
from __future__ import annotations

from contextlib import contextmanager
from contextlib import suppress
from typing import Any
from typing import Iterator
from typing import cast

from sqlalchemy.engine import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import ClauseElement

from app.database.faults import is_read_only
from app.extensions import db


class HotStatement:
    """A Core statement executed on the session connection's DBAPI cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._sql: dict[tuple[type, str], str] = {}

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

    @contextmanager
    def _executed(self, params: dict[str, Any]) -> Iterator[DBAPICursor]:
        conn = db.session.connection()
        sql = self.sql(conn.dialect)
        dbapi_conn = conn.connection.dbapi_connection
        if dbapi_conn is None:  # only after an invalidation the session has not rolled back
            raise RuntimeError("the session's connection was invalidated; roll back first")
        cursor = dbapi_conn.cursor()
        try:
            try:
                _run(conn, cursor, sql, params)
            except conn.dialect.loaded_dbapi.Error as exc:
                raise _translated(conn, exc, sql, params, cursor) from exc
            yield cursor
        finally:
            with suppress(Exception):  # already closed, or its connection is gone
                cursor.close()


def _run(conn: Connection, cursor: DBAPICursor, sql: str, params: dict[str, Any]) -> None:
    events = conn.dispatch
    if not (events.before_cursor_execute or events.after_cursor_execute):
        cursor.execute(sql, params)
        return
    context = ListenerContext(conn, cursor, sql, params)
    events.before_cursor_execute(conn, cursor, sql, params, context, False)
    cursor.execute(sql, params)
    events.after_cursor_execute(conn, cursor, sql, params, context, False)


def _translated(conn: Connection, exc: Any, sql: str, params: dict[str, Any],
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
                 parameters: dict[str, Any]) -> None:
        self.connection = self.root_connection = connection
        self.cursor = cursor
        self.statement = statement
        self.parameters = [parameters]
