"""Password-login throttling (SPEC §11), shared by every worker and server.

Three counters per attempt, each with its own allowance per window:
- (tenant, username, client network), default 5: a guesser from one place stops early;
- (tenant, username), default 50: a distributed guesser stops too, yet a stranger needs ten
  times as many failures to lock the owner out (the username-lockout denial of service);
- client network across every tenant, default 30: trying many tenants gives no more.

A client network is an IPv4 address, or the /64 of an IPv6 address (one subscriber usually
holds a whole /64); an IPv4-mapped IPv6 address counts as its IPv4 address. A request that
comes without an address (a unix socket and no trusted proxy) counts under one shared key,
UNKNOWN_NETWORK: the address limits still hold, for all such requests together, rather than
silently not at all (the app warns once; docs/operations.md, *Login throttling*).

Counters live in PostgreSQL. An attempt is *reserved* (counted) in its own committed
transaction before the password is hashed, so N parallel guesses can never all slip under
a limit; a successful login gives its reservation back. Kept in PostgreSQL rather than a
cache: every worker and node must see the same count at the moment it decides.
"""
from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.logs import security_event
from app.models import LoginAddressAttempts
from app.models import LoginAttempts
from app.services.errors import LoginThrottled
from config import LoginLimits

MAX_KEY_LENGTH = 300
DAY_S = 86_400
UNKNOWN_NETWORK = "unknown"
CONSOLE_TENANT_KEY = ""  # the console's per-tenant counter: one for the whole tenant


def client_network(address: str | None) -> str:
    """The throttling key of a client address: IPv4 as is, IPv6 as its /64, and no
    address at all as UNKNOWN_NETWORK (one key shared by every such request)."""
    if not address:
        return UNKNOWN_NETWORK
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]  # not an IP (a unix socket peer, say): the text itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _tables() -> tuple[sa.Table, sa.Table]:
    """The counter tables for Core statements (mypy sees `__table__` as any FromClause)."""
    return cast(sa.Table, LoginAttempts.__table__), cast(sa.Table, LoginAddressAttempts.__table__)


def _user_key(username: str) -> str:
    return username.lower()[:MAX_KEY_LENGTH]


def _counted(table: sa.Table, conflict_columns: list[Any], values: dict, now: datetime,
             window: timedelta) -> sa.Row[Any]:
    """Count one attempt; a window that has ended starts again at `now`. Returns the row."""
    expired = table.c.window_start <= now - window
    stmt = insert(table).values(**values, window_start=now, attempts=1).on_conflict_do_update(
        index_elements=conflict_columns,
        set_={
            "window_start": sa.case((expired, now), else_=table.c.window_start),
            "attempts": sa.case((expired, 1), else_=table.c.attempts + 1),
        },
    ).returning(table.c.window_start, table.c.attempts)
    return db.session.execute(stmt).one()


def reserve_attempt(tenant_id: int, username: str, address: str | None, now: datetime,
                    limits: LoginLimits) -> None:
    """Count this attempt (in the caller's transaction); SlowDown if a limit is exceeded."""
    window = timedelta(seconds=limits.window_s)
    per_tenant, per_address = _tables()
    tenant_columns = [per_tenant.c.tenant_id, per_tenant.c.kind, per_tenant.c.key]
    user, network = _user_key(username), client_network(address)
    pair = f"{network} {user}"
    _decide(tenant_id, network, now, window, [
        ("user", user, limits.per_user,
         _counted(per_tenant, tenant_columns,
                  {"tenant_id": tenant_id, "kind": "user", "key": user}, now, window)),
        ("user_addr", pair, limits.per_user_address,
         _counted(per_tenant, tenant_columns,
                  {"tenant_id": tenant_id, "kind": "user_addr", "key": pair}, now, window)),
        ("addr", network, limits.per_address,
         _counted(per_address, [per_address.c.address], {"address": network}, now, window)),
    ])


def reserve_console_attempt(tenant_id: int | None, address: str | None, now: datetime,
                            limits: LoginLimits) -> None:
    """Count a sign-in to the admin console (SPEC §14) as a login is counted: the whole
    tenant stands where the username stands (its allowance per_user), the tenant and the
    client network where the pair stands (per_user_address), and the network's allowance
    across every tenant is the one logins use, so keys and passwords share it. An unknown
    tenant (`None`) counts against the network only. LoginThrottled past a limit."""
    window = timedelta(seconds=limits.window_s)
    per_tenant, per_address = _tables()
    tenant_columns = [per_tenant.c.tenant_id, per_tenant.c.kind, per_tenant.c.key]
    network = client_network(address)
    counted = [("addr", network, limits.per_address,
                _counted(per_address, [per_address.c.address], {"address": network}, now,
                         window))]
    if tenant_id is not None:
        counted += [(kind, key, limit, _counted(
            per_tenant, tenant_columns, {"tenant_id": tenant_id, "kind": kind, "key": key},
            now, window)) for kind, key, limit in (
                ("console", CONSOLE_TENANT_KEY, limits.per_user),
                ("console_addr", network, limits.per_user_address))]
    _decide(tenant_id, network, now, window, counted)


def _decide(tenant_id: int | None, network: str, now: datetime, window: timedelta,
            counted: list[tuple[str, str, int, sa.Row[Any]]]) -> None:
    """LoginThrottled (after the wait of the longest exceeded window) if a count is over its
    limit; `counted` holds (kind, key, limit, counter row) of each limit."""
    exceeded = [(kind, key, row.window_start)
                for kind, key, limit, row in counted if row.attempts > limit]
    retry_after = max(((row.window_start + window - now).total_seconds()
                       for _, _, limit, row in counted if row.attempts > limit), default=0.0)
    if retry_after > 0:
        security_event("login_throttled", tenant_id=tenant_id, client=network,
                       retry_after_s=math.ceil(retry_after))
        raise LoginThrottled(math.ceil(retry_after), tenant_id, exceeded)


@dataclass(frozen=True)
class CountedStart:
    """Which address counter a passwordless start was counted in, and its window."""

    network: str
    window_start: datetime


def reserve_address_attempt(tenant_id: int, address: str | None, now: datetime,
                            limits: LoginLimits) -> CountedStart:
    """Count a passwordless start (SPEC §13.5) against the client's address only, as a
    login attempt until the sign-in it starts completes (`release_counted_start`).
    Never against the username: no secret was tried, and a stranger who knows a username
    must not be able to throttle its owner's logins with starts that cost nothing."""
    window = timedelta(seconds=limits.window_s)
    _, per_address = _tables()
    network = client_network(address)
    row = _counted(per_address, [per_address.c.address], {"address": network}, now, window)
    if row.attempts > limits.per_address:
        retry_after = max(1, math.ceil((row.window_start + window - now).total_seconds()))
        security_event("login_throttled", tenant_id=tenant_id, client=network,
                       retry_after_s=retry_after)
        raise LoginThrottled(retry_after, tenant_id, [("addr", network, row.window_start)])
    return CountedStart(network, row.window_start)


def release_counted_start(counted: CountedStart) -> None:
    """A passwordless sign-in completed: give its start's count back to the counter it was
    counted in, whoever sends the answer, and only within that window (a window that has
    started again owes it nothing)."""
    _, per_address = _tables()
    db.session.execute(sa.update(per_address).where(
        per_address.c.address == counted.network,
        per_address.c.window_start == counted.window_start, per_address.c.attempts > 0,
    ).values(attempts=per_address.c.attempts - 1))


def release_address_attempt(address: str | None) -> None:
    """A successful login: give its count back to the address (in its current window)."""
    _, per_address = _tables()
    db.session.execute(sa.update(per_address).where(
        per_address.c.address == client_network(address), per_address.c.attempts > 0,
    ).values(attempts=per_address.c.attempts - 1))


def release_after_success(tenant_id: int, username: str, address: str | None) -> None:
    """A successful login: forget the username's failures and give back the address's count."""
    per_tenant, _ = _tables()
    user, network = _user_key(username), client_network(address)
    keys = [("user", user), ("user_addr", f"{network} {user}")]
    db.session.execute(sa.delete(per_tenant).where(
        per_tenant.c.tenant_id == tenant_id,
        sa.tuple_(per_tenant.c.kind, per_tenant.c.key).in_(keys)))
    release_address_attempt(address)


def release_console_after_success(tenant_id: int, address: str | None) -> None:
    """A console sign-in with a live key: forget the tenant's failures (as a login forgets
    the username's) and give back the network's count."""
    per_tenant, per_address = _tables()
    network = client_network(address)
    db.session.execute(sa.delete(per_tenant).where(
        per_tenant.c.tenant_id == tenant_id,
        sa.tuple_(per_tenant.c.kind, per_tenant.c.key).in_(
            [("console", CONSOLE_TENANT_KEY), ("console_addr", network)])))
    db.session.execute(sa.update(per_address).where(
        per_address.c.address == network, per_address.c.attempts > 0,
    ).values(attempts=per_address.c.attempts - 1))


def purge_windows(before: datetime, tenant_id: int | None = None) -> int:
    """Delete counters whose window started before `before` (in the caller's transaction).

    With a tenant, only that tenant's counters: the cross-tenant address counters belong
    to no tenant and are left to a purge of every tenant.
    """
    per_tenant, per_address = _tables()
    query = sa.delete(per_tenant).where(per_tenant.c.window_start < before)
    if tenant_id is not None:
        return db.session.execute(query.where(per_tenant.c.tenant_id == tenant_id)).rowcount  # type: ignore[attr-defined]
    deleted = db.session.execute(query).rowcount  # type: ignore[attr-defined]  # DML gives a CursorResult
    return deleted + db.session.execute(
        sa.delete(per_address).where(per_address.c.window_start < before)).rowcount  # type: ignore[attr-defined]


def reserve_second_factor_answer(tenant_id: int, user_id: int, now: datetime,
                                 limits: LoginLimits) -> tuple[int, datetime, str]:
    """Count a second-factor answer of the user (in the caller's transaction, which then
    holds the counter's row lock: one user's answers are checked one at a time, across
    auth_sessions). Returns (seconds to wait, window start, the limit: "mfa" per window or
    "mfa_day"): 0 while under both limits of wrong answers; a right answer gives the counts
    back (`release_...`)."""
    per_tenant, _ = _tables()
    columns = [per_tenant.c.tenant_id, per_tenant.c.kind, per_tenant.c.key]
    # Two allowances: per login window, and per day (so that a guesser who knows the
    # password, and so may open any number of auth_sessions, gets a few hundred guesses a
    # month at most, not thousands: RFC 4226 §7.3).
    for limit, key, seconds, allowed in (
            ("mfa", str(user_id), limits.window_s, limits.mfa_per_user),
            ("mfa_day", f"day:{user_id}", DAY_S, limits.mfa_per_day)):
        window = timedelta(seconds=seconds)
        row = _counted(per_tenant, columns,
                       {"tenant_id": tenant_id, "kind": "mfa", "key": key}, now, window)
        if row.attempts > allowed:
            wait = math.ceil((row.window_start + window - now).total_seconds())
            return max(1, wait), row.window_start, limit
    return 0, row.window_start, ""


def release_second_factor_answers(tenant_id: int, user_id: int) -> None:
    """A right answer: the user's count of wrong ones starts again."""
    per_tenant, _ = _tables()
    db.session.execute(sa.delete(per_tenant).where(
        per_tenant.c.tenant_id == tenant_id, per_tenant.c.kind == "mfa",
        per_tenant.c.key.in_((str(user_id), f"day:{user_id}"))))
