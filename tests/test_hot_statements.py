"""The hot statements on the DBAPI cursor (app.database.statements.HotStatement) keep what
the engine's execution path would do: the transaction, typed rows, error translation."""
from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from app.database.statements import HotStatement
from app.extensions import db
from app.services.signin.password_grant import login
from app.services.tenancy.lookup import lookup_tenant
from app.services.tokens import family
from app.services.unit_of_work import transaction
from tests.helpers import utcnow


def test_the_locked_row_has_the_types_the_services_read(ctx, user):
    issued = login("acme", "alice", "correct horse", now=utcnow())
    with transaction():
        tenant = lookup_tenant("acme")
        chain = family.lock_token(tenant.id, issued.refresh_token)
        # Inside the session's transaction: the row lock is held by this very transaction.
        locks = db.session.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid()"
            " AND locktype = 'transactionid'")).scalar_one()
    assert chain is not None and chain.current
    assert chain.session_id == uuid.UUID(issued.session_id)
    assert isinstance(chain.session_expires_at, datetime) and chain.session_expires_at.tzinfo
    assert bytes(chain.successor_salt) and chain.disabled_at is None
    assert locks == 1  # FOR UPDATE took a transaction id: the same transaction as the session's


def test_an_error_is_wrapped_without_its_parameters(ctx, tenant):
    divide = HotStatement(sa.select(sa.literal_column("1") / sa.bindparam("divisor")),
                          "test_divide", {"divisor": "numeric"})
    with pytest.raises(DBAPIError) as raised:
        with transaction():
            lookup_tenant("acme")
            divide.fetchone({"divisor": 0})
    assert raised.value.orig.pgcode == "22012"  # division_by_zero, from the server
    assert "parameters hidden" in str(raised.value) and "'divisor': 0" not in str(raised.value)
    assert not raised.value.connection_invalidated


def test_a_lost_connection_is_invalidated_and_the_next_transaction_works(ctx, user,
                                                                         database_url):
    issued = login("acme", "alice", "correct horse", now=utcnow())
    with transaction():
        tenant = lookup_tenant("acme")
        tenant_id = tenant.id
    killer = sa.create_engine(database_url.replace("postgresql://", "postgresql+psycopg2://", 1),
                              isolation_level="AUTOCOMMIT")
    db.session.begin()  # no tenant_scope: it would turn the error into a 503
    pid = db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    with killer.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()
    with pytest.raises(DBAPIError) as raised:
        family.lock_token(tenant_id, issued.refresh_token)
    db.session.rollback()
    assert raised.value.connection_invalidated  # the engine's handler recognised it
    with transaction():  # a fresh connection: the chain is intact
        tenant = lookup_tenant("acme")
        chain = family.lock_token(tenant.id, issued.refresh_token)
        assert db.session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != pid
    assert chain is not None and chain.current


def test_query_recording_listeners_see_the_hot_statements(database_url, tenant, user):
    """Listeners that keep state on the context (Flask-SQLAlchemy's query recording, tracing
    agents) work on the cursor path: a refresh with SQLALCHEMY_RECORD_QUERIES on."""
    from flask_sqlalchemy.record_queries import get_recorded_queries

    from app.services.tokens.rotation import rotate
    from tests.plugins.database import make_app

    recording = make_app(database_url, SQLALCHEMY_RECORD_QUERIES=True)
    with recording.app_context():
        issued = login("acme", "alice", "correct horse", now=utcnow())
        rotate("acme", issued.refresh_token, now=utcnow())
        statements = [query.statement for query in get_recorded_queries()]
        db.session.remove()
    assert any("FOR UPDATE" in s for s in statements)
    assert any("WITH rotated" in s for s in statements)


def test_a_lock_timeout_is_a_503_and_keeps_the_connection(database_url, tenant, user):
    """A hot statement waiting past lock_timeout raises the engine's DBAPIError (SQLSTATE
    55P03), which the unit of work turns into DatabaseUnavailable; the connection is fine."""
    from app.services.errors import DatabaseUnavailable
    from tests.plugins.database import make_app

    quick = make_app(database_url, LOCK_TIMEOUT_MS=200, STATEMENT_TIMEOUT_MS=2000)
    holder = sa.create_engine(database_url)
    with quick.app_context():
        issued = login("acme", "alice", "correct horse", now=utcnow())
        with holder.begin() as conn:  # another transaction holds the session row
            conn.execute(sa.text("SELECT 1 FROM sessions WHERE id = :id FOR UPDATE"),
                         {"id": issued.session_id})
            with pytest.raises(DBAPIError) as raised:
                with db.session.begin():
                    family.lock_token(lookup_id("acme"), issued.refresh_token)
            assert raised.value.orig.pgcode == "55P03"
            assert not raised.value.connection_invalidated
            with pytest.raises(DatabaseUnavailable):
                with transaction():
                    family.lock_token(lookup_tenant("acme").id, issued.refresh_token)
        with transaction():  # the same pooled connection works again
            assert family.lock_token(lookup_tenant("acme").id, issued.refresh_token).current
        db.session.remove()
    holder.dispose()


def test_a_statement_timeout_is_a_503(database_url, tenant):
    """The statement timeout set with the transaction bounds a hot statement too (57014)."""
    from app.services.errors import DatabaseUnavailable
    from tests.plugins.database import make_app

    quick = make_app(database_url, LOCK_TIMEOUT_MS=100, STATEMENT_TIMEOUT_MS=150)
    sleep = HotStatement(sa.select(sa.func.pg_sleep(sa.bindparam("seconds"))), "test_sleep",
                         {"seconds": "float8"})
    with quick.app_context():
        with pytest.raises(DBAPIError) as raised:
            with db.session.begin():
                sleep.fetchone({"seconds": 2})
        assert raised.value.orig.pgcode == "57014"
        assert not raised.value.connection_invalidated
        with pytest.raises(DatabaseUnavailable):
            with transaction():
                sleep.fetchone({"seconds": 2})
        db.session.remove()


def lookup_id(slug: str) -> int:
    return lookup_tenant(slug).id


def _without_timeouts(text: str) -> str:
    while text.startswith("SET LOCAL "):
        text = text.split("; ", 1)[1]
    return text


def _sent(app):
    """The texts psycopg2 sent, recorded on the app's engine."""
    from sqlalchemy import event

    texts: list[str] = []

    def record(conn, cursor, *args):
        texts.append(cursor.query.decode())

    with app.app_context():
        event.listen(db.engine, "after_cursor_execute", record)
    return texts


def test_a_connection_prepares_each_statement_once(database_url, tenant, user):
    """SPEC §12: the first refresh on a connection sends PREPARE and EXECUTE in one message,
    later ones EXECUTE only; a new connection (after an invalidation) prepares again."""
    from app.services.tokens.rotation import rotate
    from tests.plugins.database import make_app

    fresh = make_app(database_url)
    texts = _sent(fresh)
    with fresh.app_context():
        token = login("acme", "alice", "correct horse", now=utcnow()).refresh_token
        del texts[:]
        for _ in range(2):
            token = rotate("acme", token, now=utcnow()).refresh_token
        hot = [_without_timeouts(t) for t in texts]
        assert hot[0].startswith("PREPARE baton_lock_token (bigint, bytea) AS SELECT")
        assert "; EXECUTE baton_lock_token(" in hot[0]
        assert hot[1].startswith("PREPARE baton_rotate ") and "EXECUTE baton_rotate(" in hot[1]
        assert hot[2].startswith("EXECUTE baton_lock_token(") and "PREPARE" not in hot[2]
        assert hot[3].startswith("EXECUTE baton_rotate(")
        db.session.connection().invalidate()  # as a lost connection does
        db.session.remove()
        del texts[:]
        token = rotate("acme", token, now=utcnow()).refresh_token
        assert "PREPARE baton_lock_token" in texts[0]
        db.session.remove()


def test_without_prepared_statements_the_text_is_sent(database_url, tenant, user):
    """BATON_DB_PREPARED_STATEMENTS=0 (a pooler in transaction mode): the statement itself."""
    from app.services.tokens.rotation import rotate
    from tests.plugins.database import make_app

    plain = make_app(database_url, DB_PREPARED_STATEMENTS=False)
    texts = _sent(plain)
    with plain.app_context():
        token = login("acme", "alice", "correct horse", now=utcnow()).refresh_token
        del texts[:]
        rotate("acme", token, now=utcnow())
        db.session.remove()
    assert "FOR UPDATE" in texts[0] and "WITH rotated" in texts[1]
    assert not any("PREPARE" in t or "EXECUTE" in t for t in texts)


def test_a_statement_the_server_lost_is_a_503_then_prepared_again(database_url, tenant, user):
    """A connection whose prepared statement disappeared (DISCARD ALL, a pooler's other
    server connection): one 503, and the next transaction prepares it again."""
    from app.services.errors import DatabaseUnavailable
    from app.services.tokens.rotation import rotate
    from tests.plugins.database import make_app

    fresh = make_app(database_url)
    with fresh.app_context():
        token = login("acme", "alice", "correct horse", now=utcnow()).refresh_token
        token = rotate("acme", token, now=utcnow()).refresh_token  # prepared now
        with db.session.begin():
            db.session.execute(sa.text("DEALLOCATE ALL"))
        with pytest.raises(DatabaseUnavailable):
            rotate("acme", token, now=utcnow())
        assert rotate("acme", token, now=utcnow()).refresh_token
        db.session.remove()
