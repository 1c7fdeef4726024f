"""What a database error means: try again later (transient), a lost connection, or a reason an
operator can act on (SPEC §5: 503, never a hang)."""
from __future__ import annotations

import re

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.engine import Engine
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.extensions import db

# lock_not_available, query_canceled (statement_timeout), deadlock_detected,
# serialization_failure, admin_shutdown, crash_shutdown, cannot_connect_now
TRANSIENT_SQLSTATES = {"55P03", "57014", "40P01", "40001", "57P01", "57P02", "57P03",
                       # a prepared statement this connection lost, or one that was there
                       # already (a pooler's other server connection): prepared again next
                       # time (app/database/statements.py)
                       "26000", "42P05"}


# read_only_sql_transaction: the server we are connected to no longer takes writes.
READ_ONLY_SQLSTATE = "25006"


def is_read_only(exc: BaseException) -> bool:
    """A write refused as read-only: this connection reached a standby (a primary being
    demoted in a failover or switchover)."""
    return getattr(exc, "pgcode", None) == READ_ONLY_SQLSTATE


@event.listens_for(Engine, "handle_error")
def _read_only_server_is_a_disconnect(context: ExceptionContext) -> None:
    """Treat a read-only refusal as a lost connection: SQLAlchemy drops the pool, the client
    gets 503, and the next connect picks the writable host of a multi-host DATABASE_URL
    (target_session_attrs=read-write) instead of asking the standby again."""
    if is_read_only(context.original_exception):
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
    url = db.engine.url
    where = f"database {url.database!r} at {server_address(url)}"
    text = str(getattr(exc, "orig", exc))
    for needle, explanation in CONNECTION_PROBLEMS:
        if needle in text.lower():
            # The server's FATAL line names the database or role; it never holds the password.
            return f"cannot use {where}: {explanation or driver_reason(text, url.password)}"
    # Anything else (a bad sslmode, SSL refused, a timeout): the driver's own words.
    code = getattr(getattr(exc, "orig", None), "pgcode", None)
    reason = driver_reason(text, url.password) or type(exc).__name__
    return f"cannot use {where}: {reason}" + (f" (SQLSTATE {code})" if code else "")


# libpq names the server it tried; the line this module writes names it already.
_SERVER_PREFIX = re.compile(r"^connection to server (?:at|on) .*? failed: ")


def driver_reason(text: str, password: str | None = None) -> str:
    """The first line of a driver message: after `FATAL:` if the server said it, without
    libpq's `connection to server at ... failed:`, and never the password."""
    if "FATAL:" in text:
        text = text.split("FATAL:", 1)[1]
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    line = _SERVER_PREFIX.sub("", line)
    if password and len(password) >= 4:  # shorter: every such letter would go
        line = line.replace(password, "***")
    return line
