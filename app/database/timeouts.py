"""Lock and statement timeouts applied inside every transaction (SPEC §5 and §12).

Startup `options` do not survive a transaction pooler: PgBouncer refuses them, or drops
them when told to ignore them, and the server then waits for a lock forever. So the
timeouts are `SET LOCAL`, sent in the same message as the first statement of each
transaction: no extra round trip, and nothing is left behind on the server connection
for the next client of a pooled connection.
"""
from __future__ import annotations

from typing import Any

from psycopg2.extensions import TRANSACTION_STATUS_IDLE
from psycopg2.extensions import cursor as _Cursor


def timeout_prefix(lock_timeout_ms: int, statement_timeout_ms: int,
                   idle_in_transaction_ms: int) -> str:
    """The statements that open every transaction; integers only, so no quoting is needed."""
    return (
        f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}; "
        f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}; "
        f"SET LOCAL idle_in_transaction_session_timeout = {int(idle_in_transaction_ms)}; "
    )


def timeout_cursor(prefix: str) -> type[_Cursor]:
    """A psycopg2 cursor class that prepends `prefix` to the first statement of a transaction.

    psycopg2 opens a transaction implicitly before a statement on an idle connection, so
    "idle and not autocommit" means "this statement is the transaction's first". The
    prefix is plain SQL without placeholders, so parameter interpolation is unaffected, and
    psycopg2 reports the result (rows, rowcount) of the last statement: the caller's own.
    """

    class TimeoutCursor(_Cursor):
        def execute(self, query: Any, vars: Any = None) -> Any:
            if self._first_in_transaction() and isinstance(query, str):
                query = prefix + query
            return super().execute(query, vars)

        def executemany(self, query: Any, vars_list: Any) -> Any:
            if self._first_in_transaction() and isinstance(query, str):
                # The first execution opens the transaction; later ones repeat the SET
                # LOCALs, which only re-set the same values.
                query = prefix + query
            return super().executemany(query, vars_list)

        def _first_in_transaction(self) -> bool:
            conn = self.connection
            return not conn.autocommit and conn.info.transaction_status == TRANSACTION_STATUS_IDLE

    return TimeoutCursor
