"""Password-login throttling per (tenant, username) and per (tenant, client address).

Counters live in PostgreSQL so every gunicorn worker and every server shares them.
An attempt is *reserved* (counted) in its own committed transaction before the
password is hashed, so N parallel guesses can never all slip under the limit;
a successful login gives its reservation back (and clears the username's count).
"""
from __future__ import annotations

import math
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from app.errors import SlowDown
from app.extensions import db
from app.logs import security_event
from app.models import LoginAttempts


class LoginThrottled(SlowDown):
    """429, with what the login.throttled event needs: (kind, key, window_start) per limit."""

    def __init__(self, retry_after: int, tenant_id: int,
                 limits: list[tuple[str, str, datetime]]) -> None:
        super().__init__(retry_after)
        self.tenant_id = tenant_id
        self.limits = limits


def _upsert(tenant_id: int, kind: str, key: str, now: datetime, window: timedelta):
    """Count one attempt; a window that has ended starts again at `now`. Returns the row."""
    table = LoginAttempts.__table__
    expired = table.c.window_start <= now - window
    stmt = insert(LoginAttempts).values(
        tenant_id=tenant_id, kind=kind, key=key, window_start=now, attempts=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.tenant_id, table.c.kind, table.c.key],
        set_={
            "window_start": sa.case((expired, now), else_=table.c.window_start),
            "attempts": sa.case((expired, 1), else_=table.c.attempts + 1),
        },
    ).returning(LoginAttempts.window_start, LoginAttempts.attempts)
    return db.session.execute(stmt).one()


def reserve_attempt(tenant_id: int, username: str, address: str | None, now: datetime, *,
                    window_s: int, max_per_user: int, max_per_address: int) -> None:
    """Count this attempt (in the caller's transaction); SlowDown if a limit is exceeded."""
    window = timedelta(seconds=window_s)
    limits = [("user", username.lower(), max_per_user)]
    if address:
        limits.append(("addr", address, max_per_address))
    retry_after = 0.0
    exceeded = []
    for kind, key, limit in limits:
        row = _upsert(tenant_id, kind, key, now, window)
        if row.attempts > limit:
            retry_after = max(retry_after, (row.window_start + window - now).total_seconds())
            exceeded.append((kind, key, row.window_start))
    if retry_after > 0:
        security_event("login_throttled", tenant_id=tenant_id, client=address,
                       retry_after_s=math.ceil(retry_after))
        raise LoginThrottled(math.ceil(retry_after), tenant_id, exceeded)


def release_after_success(tenant_id: int, username: str, address: str | None) -> None:
    """A successful login: forget the username's failures and give back the address's count."""
    table = LoginAttempts.__table__
    db.session.execute(sa.delete(table).where(
        table.c.tenant_id == tenant_id, table.c.kind == "user", table.c.key == username.lower()))
    if address:
        db.session.execute(sa.update(table).where(
            table.c.tenant_id == tenant_id, table.c.kind == "addr", table.c.key == address,
            table.c.attempts > 0).values(attempts=table.c.attempts - 1))


def purge_windows(before: datetime) -> int:
    """Delete counters whose window started before `before` (inside the caller's transaction)."""
    table = LoginAttempts.__table__
    return db.session.execute(sa.delete(table).where(table.c.window_start < before)).rowcount
