"""The lock and statement timeouts hold inside every transaction, with no startup options."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from app.extensions import db
from tests.conftest import make_app


@pytest.fixture
def short_timeouts(database_url):
    app = make_app(database_url, LOCK_TIMEOUT_MS=500, STATEMENT_TIMEOUT_MS=700)
    with app.app_context():
        yield
        db.session.remove()
        db.engine.dispose()


def test_no_startup_options(database_url):
    """A transaction pooler refuses or drops startup `options`: none are sent."""
    app = make_app(database_url)
    assert "options" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"]


def test_every_transaction_sees_its_timeouts(short_timeouts):
    for _ in range(2):  # the second transaction reuses the pooled connection
        with db.session.begin():
            row = db.session.execute(sa.text(
                "SELECT current_setting('lock_timeout'), current_setting('statement_timeout'),"
                " current_setting('idle_in_transaction_session_timeout')")).one()
        assert tuple(row) == ("500ms", "700ms", "1min")
    # SET LOCAL: outside a transaction the connection is back to the server's defaults.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "0"


def test_statement_timeout_applies_to_the_first_statement(short_timeouts):
    """Sent in the same message, the SET LOCAL still bounds the statement that follows it."""
    with pytest.raises(OperationalError) as caught:
        with db.session.begin():
            db.session.execute(sa.text("SELECT pg_sleep(5)"))
    assert caught.value.orig.pgcode == "57014"  # query_canceled
