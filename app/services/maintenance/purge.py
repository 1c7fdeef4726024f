"""Token purge (SPEC §7): short batched transactions that never block live refreshes.

What goes, with `cutoff = now - retention`:
- sessions revoked or past their absolute expiry before the cutoff, with all their tokens;
- events (SPEC §10) that occurred before the cutoff and were delivered or had no webhook to
  go to; an event still owed a delivery (or that failed for good) stays.
- sign-in records (SPEC §13): challenge sessions and authorization codes that expired before
  the cutoff (a used code is kept until then, so a replay of it still revokes its session),
  TOTP factors left unconfirmed (pending factors are unusable after 10 minutes), passkey
  registration challenges that expired (unusable after 300 s); console sessions (SPEC §14)
  that ended, idle or at their absolute expiry, before the cutoff.
- refresh tokens whose idle expiry is before the cutoff. A rotated token of a live session
  stays until then: until its own expiry it could still be presented, and replay detection
  needs it to recognise the presentation. If the expired token is the session's current
  one (`sessions.current_token_id`), the session can never refresh again and goes too, with it.

Every batch is one transaction that selects its rows `FOR UPDATE SKIP LOCKED`: a row that
a refresh holds is skipped (a later run takes it), and purge never waits for a lock.

Purge also yields the CPU: after each batch it rests in proportion to the batch's own
duration, so that it is busy for at most `duty_cycle` of its wall-clock time (like
autovacuum's cost delay). Flat out, it takes a whole core on the database and one in the
CLI, and on a small machine every refresh waits for them (docs/performance.md).
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any
from typing import Callable

import sqlalchemy as sa
from sqlalchemy import select

from app.extensions import db
from app.models import AuthorizationCode
from app.models import AuthSession
from app.models import ChallengeSession
from app.models import ConsoleSession
from app.models import Event
from app.models import Factor
from app.models import PasskeyRegistration
from app.models import RefreshToken
from app.services.accounts.factors import PENDING_TTL
from app.services.signin import console_sessions
from app.services.signin.throttling import purge_windows
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction


@dataclass
class PurgeReport:
    sessions: int = 0
    tokens: int = 0
    events: int = 0
    sign_ins: int = 0  # challenge/console sessions, codes, pending factors, registrations
    batches: int = 0
    longest_batch_s: float = 0.0
    elapsed_s: float = 0.0
    busy_s: float = 0.0  # inside batches; the rest of elapsed_s was rest (duty cycle)
    dry_run: bool = False


Progress = Callable[[PurgeReport], None]

# Busy a quarter of the time: a purge of 1M tokens takes four times as long (a few minutes),
# and the refreshes around it slow down far less (docs/performance.md has the measurement).
DEFAULT_DUTY_CYCLE = 0.25
MIN_DUTY_CYCLE = 0.01  # the CLI's 1 %
MAX_REST_S = 10.0


def purge(now: datetime, retention: timedelta, batch_size: int, *, tenant_slug: str | None = None,
          dry_run: bool = False, progress: Progress | None = None,
          duty_cycle: float = DEFAULT_DUTY_CYCLE) -> PurgeReport:
    """Remove (or with dry_run, count) what expired or was revoked before now - retention.

    `duty_cycle` (0.01 <= d <= 1) is the share of the time spent in batches; 1 runs flat out.
    """
    if not MIN_DUTY_CYCLE <= duty_cycle <= 1:
        raise ValueError(f"duty_cycle must be in [{MIN_DUTY_CYCLE}, 1], not {duty_cycle}")
    started = time.monotonic()
    cutoff = now - retention
    tenant_id = _tenant_id(tenant_slug)
    report = PurgeReport(dry_run=dry_run)
    rest = _Rest(duty_cycle)
    if dry_run:
        _count(report, now, cutoff, tenant_id)
    else:
        # Tokens first, in batches of tokens: a long-lived session can own thousands of them.
        # A session's current token goes only with its session (the foreign key on
        # sessions.current_token_id is checked at each batch's commit).
        _batches(report, lambda: _dead_session_token_batch(cutoff, tenant_id, batch_size),
                 progress, rest)
        _batches(report, lambda: _expired_token_batch(cutoff, tenant_id, batch_size), progress,
                 rest)
        _batches(report, lambda: _dead_session_batch(cutoff, tenant_id, batch_size), progress,
                 rest)
        _batches(report, lambda: _orphan_session_batch(cutoff, tenant_id, batch_size),
                 progress, rest)
        _purge_rows(report, "events", _old_events(cutoff, tenant_id), Event.id, batch_size,
                    rest)
        for ids, column in _sign_in_rows(now, cutoff, tenant_id):
            _purge_rows(report, "sign_ins", ids, column, batch_size, rest)
        with transaction():  # login-throttle windows: tiny rows, one statement
            purge_windows(now - max(retention, timedelta(days=1)), tenant_id)
    report.elapsed_s = time.monotonic() - started
    return report


def _tenant_id(tenant_slug: str | None) -> int | None:
    if tenant_slug is None:
        return None
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        return tenant.id


class _Rest:
    """Sleeps after a batch so that batches fill at most `duty_cycle` of the time. One rest
    never exceeds MAX_REST_S: a batch slowed by a stall (up to the statement timeout) must
    not put the purge to sleep for many minutes."""

    def __init__(self, duty_cycle: float) -> None:
        self.factor = 1 / duty_cycle - 1

    def rest_for(self, batch_s: float) -> float:
        return min(batch_s * self.factor, MAX_REST_S)

    def __call__(self, batch_s: float) -> None:
        if self.factor:
            time.sleep(self.rest_for(batch_s))


def _batches(report: PurgeReport, run_one: Callable[[], tuple[int, int]],
             progress: Progress | None, rest: _Rest) -> None:
    """Run batches, each its own transaction, until one finds nothing."""
    while True:
        started = time.monotonic()
        with transaction():
            sessions, tokens = run_one()
        if sessions == 0 and tokens == 0:
            return
        rest(_account(report, started, sessions, tokens, progress))


def _account(report: PurgeReport, started: float, sessions: int, tokens: int,
             progress: Progress | None) -> float:
    """Count a finished batch; returns how long it took."""
    took = time.monotonic() - started
    report.batches += 1
    report.sessions += sessions
    report.tokens += tokens
    report.busy_s += took
    report.longest_batch_s = max(report.longest_batch_s, took)
    if progress:
        progress(report)
    return took


def _dead_sessions(cutoff: datetime, tenant_id: int | None) -> sa.Select[uuid.UUID]:
    dead = sa.or_(AuthSession.revoked_at < cutoff, AuthSession.expires_at < cutoff)
    query = select(AuthSession.id).where(dead)
    return query.where(AuthSession.tenant_id == tenant_id) if tenant_id else query


def _expired_tokens(cutoff: datetime, tenant_id: int | None) -> sa.Select[int]:
    query = select(RefreshToken.id).where(RefreshToken.expires_at < cutoff)
    return query.where(RefreshToken.tenant_id == tenant_id) if tenant_id else query


# The token is its session's current token (a probe by the session's primary key). A current
# token goes only together with its session.
_IS_CURRENT = sa.exists().where(AuthSession.id == RefreshToken.session_id,
                                AuthSession.current_token_id == RefreshToken.id)


def _orphaned_sessions(cutoff: datetime, tenant_id: int | None) -> sa.Select[uuid.UUID]:
    """Live sessions whose current token's idle expiry is before the cutoff."""
    query = select(AuthSession.id).join(
        RefreshToken, (RefreshToken.id == AuthSession.current_token_id)
        & (RefreshToken.session_id == AuthSession.id)
    ).where(RefreshToken.expires_at < cutoff)
    return query.where(AuthSession.tenant_id == tenant_id) if tenant_id else query


def _delete_sessions(ids: Sequence[uuid.UUID]) -> tuple[int, int]:
    tokens = db.session.execute(
        sa.delete(RefreshToken).where(RefreshToken.session_id.in_(ids))).rowcount  # type: ignore[attr-defined]
    sessions = db.session.execute(
        sa.delete(AuthSession).where(AuthSession.id.in_(ids))).rowcount  # type: ignore[attr-defined]
    return sessions, tokens


def _dead_session_token_batch(cutoff: datetime, tenant_id: int | None,
                              batch_size: int) -> tuple[int, int]:
    dead = _dead_sessions(cutoff, tenant_id).subquery()
    ids = db.session.scalars(
        select(RefreshToken.id).join(dead, dead.c.id == RefreshToken.session_id)
        .where(~_IS_CURRENT)  # it goes with its session
        .limit(batch_size).with_for_update(of=RefreshToken, skip_locked=True)
    ).all()
    if not ids:
        return 0, 0
    return 0, db.session.execute(
        sa.delete(RefreshToken).where(RefreshToken.id.in_(ids))).rowcount  # type: ignore[attr-defined]


def _dead_session_batch(cutoff: datetime, tenant_id: int | None,
                        batch_size: int) -> tuple[int, int]:
    ids = db.session.scalars(
        _dead_sessions(cutoff, tenant_id).limit(batch_size).with_for_update(skip_locked=True)
    ).all()
    return _delete_sessions(ids) if ids else (0, 0)


def _expired_token_batch(cutoff: datetime, tenant_id: int | None,
                         batch_size: int) -> tuple[int, int]:
    ids = db.session.scalars(
        _expired_tokens(cutoff, tenant_id).where(~_IS_CURRENT)
        .limit(batch_size).with_for_update(skip_locked=True)
    ).all()
    if not ids:
        return 0, 0
    return 0, db.session.execute(
        sa.delete(RefreshToken).where(RefreshToken.id.in_(ids))).rowcount  # type: ignore[attr-defined]


def _orphan_session_batch(cutoff: datetime, tenant_id: int | None,
                          batch_size: int) -> tuple[int, int]:
    """Sessions whose current token expired: they can never refresh again."""
    ids = db.session.scalars(
        _orphaned_sessions(cutoff, tenant_id).limit(batch_size)
        .with_for_update(of=AuthSession, skip_locked=True)
    ).all()
    return _delete_sessions(ids) if ids else (0, 0)


def _old_events(cutoff: datetime, tenant_id: int | None) -> sa.Select[int]:
    query = select(Event.id).where(Event.occurred_at < cutoff,
                                   Event.delivery.in_(("delivered", "none")))
    return query.where(Event.tenant_id == tenant_id) if tenant_id else query


def _sign_in_rows(now: datetime, cutoff: datetime, tenant_id: int | None
                  ) -> list[tuple[sa.Select[Any], sa.ColumnElement[Any]]]:
    """(ids to delete, their id column) of each kind of sign-in record."""
    pending_before = min(cutoff, now - PENDING_TTL)
    queries = [
        (select(ChallengeSession.id).where(ChallengeSession.expires_at < cutoff),
         ChallengeSession.tenant_id),
        (select(AuthorizationCode.id).where(AuthorizationCode.expires_at < cutoff),
         AuthorizationCode.tenant_id),
        (select(Factor.id).where(Factor.confirmed_at.is_(None),
                                 Factor.created_at < pending_before), Factor.tenant_id),
        (select(ConsoleSession.id).where(sa.or_(
            ConsoleSession.expires_at < cutoff,
            ConsoleSession.last_seen_at < cutoff - console_sessions.IDLE)),
         ConsoleSession.tenant_id),
        # Spent on use, so only abandoned ones are left: useless once expired.
        (select(PasskeyRegistration.id).where(PasskeyRegistration.expires_at < now),
         PasskeyRegistration.tenant_id),
    ]
    return [(query.where(tenant == tenant_id) if tenant_id else query,
             query.selected_columns[0]) for query, tenant in queries]


def _purge_rows(report: PurgeReport, counter: str, ids_query: sa.Select[Any],
                id_column: Any, batch_size: int, rest: _Rest) -> None:
    """Delete what `ids_query` selects, one locked batch per transaction, counted in
    `report.<counter>`."""
    table = id_column.table
    while True:
        started = time.monotonic()
        with transaction():
            ids = db.session.scalars(
                ids_query.limit(batch_size).with_for_update(skip_locked=True)).all()
            deleted = db.session.execute(
                sa.delete(table).where(id_column.in_(ids))).rowcount if ids else 0  # type: ignore[attr-defined]
        if not deleted:
            return
        setattr(report, counter, getattr(report, counter) + deleted)
        rest(_account(report, started, 0, 0, None))


def _count(report: PurgeReport, now: datetime, cutoff: datetime, tenant_id: int | None) -> None:
    """What a real run would remove now (dry run): same rules, nothing locked or deleted."""
    with transaction():
        dead = _dead_sessions(cutoff, tenant_id).subquery()
        expired = _expired_tokens(cutoff, tenant_id).subquery()
        orphaned = (
            _orphaned_sessions(cutoff, tenant_id).where(AuthSession.id.not_in(select(dead.c.id)))
        ).subquery()
        count = lambda q: db.session.execute(  # noqa: E731
            select(sa.func.count()).select_from(q)).scalar_one()
        report.sessions = count(dead) + count(orphaned)
        gone_sessions = sa.union(select(dead.c.id), select(orphaned.c.id)).subquery()
        report.events = count(_old_events(cutoff, tenant_id).subquery())
        report.sign_ins = sum(count(ids.subquery())
                              for ids, _ in _sign_in_rows(now, cutoff, tenant_id))
        report.tokens = count(
            select(RefreshToken.id).where(sa.or_(
                RefreshToken.session_id.in_(select(gone_sessions.c.id)),
                RefreshToken.id.in_(select(expired.c.id)),
            )).subquery()
        )
