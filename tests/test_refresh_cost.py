"""A deterministic guard on the hot path: how many SQL statements one refresh executes.

Not a timing. If a change adds a round trip to a refresh, this fails; update the number
only together with docs/performance.md.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app.extensions import db
from app.services.errors import GrantRejected
from app.services.signin import password_grant
from app.services.tokens import family
from app.services.tokens import rotation
from tests.helpers import utcnow

REFRESH_STATEMENTS = 2  # the locking SELECT and the rotation CTE (plus BEGIN and COMMIT)
TIMEOUTS = "SET LOCAL lock_timeout = "  # how the first message of every transaction starts


# A hot statement runs as `EXECUTE name(…)` once it is prepared on its connection.
PREPARED_KINDS = {family.LOCK_TOKEN.name: "SELECT", rotation.ROTATE.name: "WITH"}


def kind(statement: str) -> str:
    """The first keyword of the statement a text runs: through PREPARE and EXECUTE too."""
    words = statement.split()
    if words[0].upper() == "PREPARE":
        return words[words.index("AS") + 1].upper()
    if words[0].upper() == "EXECUTE":
        return PREPARED_KINDS[words[1].split("(", 1)[0]]
    return words[0].upper()


@contextmanager
def statements():
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(kind(statement))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@contextmanager
def sent():
    """The text psycopg2 really sent for each execute (the timeouts are added below SQLAlchemy)."""
    texts: list[str] = []

    def record(conn, cursor, *args):
        texts.append(cursor.query.decode())

    event.listen(db.engine, "after_cursor_execute", record)
    try:
        yield texts
    finally:
        event.remove(db.engine, "after_cursor_execute", record)


def test_rotation_executes_two_statements(ctx, user):
    first = password_grant.login("acme", "alice", "correct horse", now=utcnow())
    with statements() as seen:
        rotation.rotate("acme", first.refresh_token, now=utcnow())
    assert seen == ["SELECT", "WITH"]
    assert len(seen) == REFRESH_STATEMENTS


def test_timeouts_ride_with_the_first_statement_of_each_transaction(ctx, user):
    """SET LOCAL in the same message as the locking SELECT: no extra round trip (SPEC §12)."""
    first = password_grant.login("acme", "alice", "correct horse", now=utcnow())
    with sent() as texts:
        rotation.rotate("acme", first.refresh_token, now=utcnow())
        rotation.rotate("acme", first.refresh_token, now=utcnow())  # a new transaction
    assert len(texts) == REFRESH_STATEMENTS + 2  # the duplicate: lock and successor
    assert texts[0].startswith(TIMEOUTS) and kind(texts[0].rsplit("; ", 1)[-1]) == "SELECT"
    assert "SET LOCAL" not in texts[1]  # once per transaction
    assert texts[2].startswith(TIMEOUTS) and kind(texts[2].rsplit("; ", 1)[-1]) == "SELECT"


def test_duplicate_within_interval_adds_one_read(ctx, user):
    t0 = utcnow()
    first = password_grant.login("acme", "alice", "correct horse", now=t0)
    rotation.rotate("acme", first.refresh_token, now=t0)
    with statements() as seen:
        rotation.rotate("acme", first.refresh_token, now=t0 + timedelta(seconds=1))
    assert seen == ["SELECT", "SELECT"]  # lock, then the successor; nothing written


def test_replay_writes_the_revocation_and_its_events(ctx, user):
    t0 = utcnow()
    first = password_grant.login("acme", "alice", "correct horse", now=t0)
    rotation.rotate("acme", first.refresh_token, now=t0)
    with statements() as seen:
        with pytest.raises(GrantRejected):
            rotation.rotate("acme", first.refresh_token, now=t0 + timedelta(hours=1))
    # The revocation, then refresh_token.replayed and session.revoked in one INSERT.
    assert seen == ["SELECT", "UPDATE", "WITH"]


def test_rotation_updates_are_hot(ctx, user):
    """Marking the token rotated and moving the session's current token touch no indexed
    column, so PostgreSQL updates both rows in place (HOT): no new index entries."""
    first = password_grant.login("acme", "alice", "correct horse", now=utcnow())

    def updates() -> dict[str, tuple[int, int]]:
        return {row.relname: (row.n_tup_upd, row.n_tup_hot_upd) for row in db.session.execute(
            sa.text("SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables"
                    " WHERE relname IN ('sessions', 'refresh_tokens')"))}

    with db.session.begin():
        chain = family.lock_token(1, first.refresh_token)
        assert chain is not None and chain.current
        before = updates()  # read inside one transaction: nothing is flushed in between
        db.session.connection().execute(rotation.ROTATE.statement, {
            "now": utcnow(), "token_id": chain.token_id, "successor_digest": b"\x07" * 32,
            "successor_expires_at": chain.token_expires_at})
        after = updates()
    assert {name: (after[name][0] - before[name][0], after[name][1] - before[name][1])
            for name in after} == {"sessions": (1, 1), "refresh_tokens": (1, 1)}
