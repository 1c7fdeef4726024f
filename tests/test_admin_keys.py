"""Admin keys (SPEC §9): shown once, stored as digests, scoped, revocable, touched once a minute."""
from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from tests import secret_registry
from tests.helpers import AdminClient
from tests.helpers import utcnow
from tests.test_cli import assert_one_error_line


def create_key(runner, *args: str) -> tuple[str, str]:
    result = runner.invoke(args=["admin-keys", "create", "acme", *args])
    assert result.exit_code == 0, result.output
    key = result.output.rstrip("\n").splitlines()[-1]
    secret_registry.remember(key)
    return key, result.output


def test_create_prints_the_key_once_and_stores_its_digest(app, runner, tenant):
    key, output = create_key(runner, "--name", "backend")
    assert key.startswith("bat_") and len(key) >= 4 + 43  # 256 bits, base64url
    assert output.count(key) == 1
    with app.app_context():
        rows = db.session.execute(sa.text("SELECT * FROM admin_keys")).mappings().all()
        db.session.remove()
    assert len(rows) == 1
    assert bytes(rows[0]["digest"]) == hashlib.sha256(key.encode()).digest()
    assert key not in repr(dict(rows[0]))
    listing = runner.invoke(args=["admin-keys", "list", "acme"])
    assert listing.exit_code == 0 and key not in listing.output
    line = listing.output.splitlines()[1]
    assert "backend" in line and "admin" in line and "never" in line and "active" in line


def test_keys_are_random(runner, tenant):
    assert create_key(runner)[0] != create_key(runner)[0]


def test_revoke(runner, admin, tenant):
    assert admin("GET", "/users").status_code == 200
    result = runner.invoke(args=["admin-keys", "revoke", "acme", "1"])
    assert result.exit_code == 0 and "Revoked" in result.output
    assert admin("GET", "/users").status_code == 401
    again = runner.invoke(args=["admin-keys", "revoke", "acme", "1"])
    assert again.exit_code == 0 and "already revoked" in again.output
    assert "revoked" in runner.invoke(args=["admin-keys", "list", "acme"]).output


def test_revoke_other_tenants_key_refused(runner, tenant):
    runner.invoke(args=["tenants", "create", "globex"])
    assert runner.invoke(args=["admin-keys", "create", "globex"]).exit_code == 0
    assert_one_error_line(runner.invoke(args=["admin-keys", "revoke", "acme", "1"]),
                          "no admin key 1")


@pytest.mark.parametrize("args, fragment", [
    (["admin-keys", "create", "nope"], "unknown tenant"),
    (["admin-keys", "create", "acme", "--scope", "root"], "--scope"),
    (["admin-keys", "list", "nope"], "unknown tenant"),
    (["admin-keys", "revoke", "acme", "abc"], "KEY_ID"),
    (["admin-keys", "revoke", "acme", "7"], "no admin key 7"),
    (["admin-keys", "create"], "TENANT"),
])
def test_cli_mistakes_are_one_line(runner, tenant, args, fragment):
    assert_one_error_line(runner.invoke(args=args), fragment)


def test_list_empty(runner, tenant):
    assert "No admin keys." in runner.invoke(args=["admin-keys", "list", "acme"]).output


def last_used(app):
    with app.app_context():
        value = db.session.execute(sa.text("SELECT last_used_at FROM admin_keys")).scalar_one()
        db.session.remove()
    return value


def test_last_used_at_written_at_most_once_a_minute(app, admin):
    assert last_used(app) is None
    admin("GET", "/users")
    first = last_used(app)
    assert first is not None
    for _ in range(3):
        admin("GET", "/users")
    assert last_used(app) == first  # fresh: not rewritten
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE admin_keys SET last_used_at = :t"),
                     {"t": utcnow() - timedelta(seconds=61)})
    admin("GET", "/users")
    assert last_used(app) > first


def count_statements(app, call) -> tuple[list[str], object]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", record)
        try:
            response = call()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", record)
    return statements, response


def test_unknown_and_revoked_keys_fail_the_same_way(app, runner, client, tenant):
    """Same statements, same answer: nothing tells a revoked key from one never issued."""
    key, _ = create_key(runner)
    runner.invoke(args=["admin-keys", "revoke", "acme", "1"])
    unknown = "bat_" + "A" * 43

    def attempt(presented):
        return lambda: AdminClient(client, "acme", presented)("GET", "/users")

    revoked_sql, revoked = count_statements(app, attempt(key))
    unknown_sql, missing = count_statements(app, attempt(unknown))
    assert revoked_sql == unknown_sql
    assert revoked.status_code == missing.status_code == 401
    assert revoked.get_data() == missing.get_data()
    assert revoked.headers["WWW-Authenticate"] == missing.headers["WWW-Authenticate"]


def test_admin_keys_never_logged(app, admin, caplog):
    caplog.set_level("DEBUG")
    admin("GET", "/users")
    admin("GET", "/users", key=admin.key + "x")
    assert admin.key not in caplog.text
