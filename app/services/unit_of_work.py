"""The unit of work of every service call: one `with db.session.begin():` (SPEC §2, §5).

    with transaction():
        tenant = lookup_tenant(tenant_slug)
        ...                       # locks, checks, writes; events in the same transaction

commits when the block ends and rolls back when it raises. One translation on top: a
transient database fault (a lost connection, a lock or statement timeout, a full pool) is
raised as DatabaseUnavailable after the rollback, which HTTP answers with 503 and
`Retry-After` and the CLI with one line. Nothing else is hidden here: the tenant is looked up
by the service (app.services.tenancy.lookup), inside the transaction it opened.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.database.faults import is_transient
from app.extensions import db
from app.metrics import count_unavailable
from app.runtime import runtime
from app.services.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


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
        raise DatabaseUnavailable(runtime().retry_after_s) from None
