"""Usernames and the password policy (SPEC §11), and the migration that normalises usernames."""
from __future__ import annotations

import click
import pytest
import sqlalchemy as sa
from flask_migrate import downgrade
from flask_migrate import upgrade

from app.extensions import db
from app.services.accounts.credentials import check_password
from app.services.accounts.credentials import normalize_username
from app.services.errors import InvalidInput
from app.services.tenancy import tenants
from tests.test_cli import assert_one_error_line


@pytest.mark.parametrize("raw, expected", [
    ("Alice", "alice"), ("ALICE", "alice"), ("Straße", "strasse"), ("Zoe\u0308", "zoë"),
    ("ΣΊΣΥΦΟΣ", "σίσυφοσ"), ("ǅ", "ǆ"),
])
def test_normalize_username(raw, expected):
    assert normalize_username(raw) == expected
    assert normalize_username(expected) == expected  # idempotent


@pytest.mark.parametrize("raw", [" alice", "alice ", "", "a" * 151, "a\x00b"])
def test_bad_usernames(raw):
    with pytest.raises(InvalidInput) as info:
        normalize_username(raw)
    assert info.value.message.startswith("username")


@pytest.mark.parametrize("password, ok", [
    ("1234567", False), ("12345678", True), ("é" * 8, True), ("e\u0301" * 4, False),
    (" " * 10, False), ("\t \n" * 4, False), ("x" * 1024, True), ("x" * 1025, False),
    ("abcdefgh\x00", False),
])
def test_password_policy(password, ok):
    if ok:
        check_password(password, 8)
    else:
        with pytest.raises(InvalidInput) as info:
            check_password(password, 8)
        assert info.value.message.startswith("password")


def test_cli_usernames_are_normalised(runner, tenant, tokens):
    result = runner.invoke(args=["users", "create", "acme", "Bob", "--password-stdin"],
                           input="correct horse\n")
    assert result.exit_code == 0, result.output
    assert tokens.login("BOB", "correct horse").status_code == 200
    assert_one_error_line(runner.invoke(args=["users", "create", "acme", "bob",
                                              "--password-stdin"], input="correct horse\n"),
                          "already exists")
    assert runner.invoke(args=["users", "disable", "acme", "BoB"]).exit_code == 0


@pytest.mark.parametrize("command", [["users", "create", "acme", "bob"],
                                     ["users", "set-password", "acme", "alice"]])
def test_cli_enforces_policy(runner, user, command):
    result = runner.invoke(args=[*command, "--password-stdin"], input="short\n")
    assert_one_error_line(result, "password must be 8 to 1024 characters")


def test_tenant_minimum_applies_everywhere(app, runner, admin, client, user):
    assert runner.invoke(args=["tenants", "update", "acme", "--password-min-length",
                               "12"]).exit_code == 0
    result = runner.invoke(args=["users", "create", "acme", "bob", "--password-stdin"],
                           input="eleven char\n")
    assert_one_error_line(result, "12 to 1024")
    response = admin.create_user("bob", "eleven char")
    assert response.status_code == 400
    assert response.get_json()["error_description"].startswith("password")
    token = admin("POST", "/users/1/reset-link").get_json()["token"]
    reset = client.post("/v1/tenants/acme/password/reset",
                        json={"token": token, "new_password": "eleven char"})
    assert reset.status_code == 400
    assert reset.get_json()["error"] == "invalid_request"
    assert reset.get_json()["error_description"].startswith("password")
    # Existing short passwords still log in: the policy applies to new passwords.
    assert client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice",
        "password": "correct horse"}).status_code == 200


def test_users_enable(runner, user, tokens):
    assert runner.invoke(args=["users", "disable", "acme", "alice"]).exit_code == 0
    assert tokens.login().status_code == 400
    result = runner.invoke(args=["users", "enable", "acme", "ALICE"])
    assert result.exit_code == 0 and "Enabled" in result.output
    assert tokens.login().status_code == 200
    assert_one_error_line(runner.invoke(args=["users", "enable", "acme", "nobody"]), "nobody")


# The migration. Rows are inserted with raw SQL below the revision, as an old version would.
INSERT_USER = ("INSERT INTO users (tenant_id, username, password_hash, created_at)"
               " VALUES (1, :name, 'x', now())")


def _at_0002_with_users(names: list[str]) -> None:
    db.session.remove()
    downgrade(revision="0002")
    with db.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO tenants (slug, name, access_ttl, refresh_ttl,"
                             " session_ttl, reuse_interval, created_at)"
                             " VALUES ('acme', 'Acme', 1, 1, 1, 0, now())"))
        for name in names:
            conn.execute(sa.text(INSERT_USER), {"name": name})


def _usernames() -> list[str]:
    with db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT username FROM users ORDER BY id")).scalars().all()


def test_migration_normalises_usernames(ctx):
    _at_0002_with_users(["Alice", "BOB", "zoe\u0308", "carol"])
    upgrade()
    assert _usernames() == ["alice", "bob", "zoë", "carol"]


def test_migration_refuses_collisions_naming_the_rows(ctx):
    _at_0002_with_users(["Alice", "alice", "bob", "Zoë", "zoe\u0308", "ZOË"])
    try:
        with pytest.raises(click.ClickException) as info:
            upgrade()
        message = info.value.message
        assert "\n" not in message
        assert ("tenant 'acme': user id 1 'Alice', user id 2 'alice' all become 'alice'"
                in message)
        assert "user id 4" in message and "user id 5" in message and "user id 6" in message
        assert "bob" not in message
        # Nothing changed: the whole upgrade rolled back.
        assert _usernames()[:2] == ["Alice", "alice"]
        assert "admin_keys" not in sa.inspect(db.engine).get_table_names()
    finally:
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM users WHERE id IN (2, 5, 6)"))
        upgrade()
    assert _usernames() == ["alice", "bob", "zoë"]


def test_migration_refuses_names_that_cannot_survive_normalisation(ctx):
    """Case-folding can lengthen a name past the column limit (ß -> ss), and a name with
    surrounding spaces could never log in again: one clear message, nothing changed."""
    long_name = "\u00df" * 76  # 76 characters; 152 once case-folded
    _at_0002_with_users(["ok", long_name, " padded "])
    try:
        with pytest.raises(click.ClickException) as info:
            upgrade()
        message = info.value.message
        assert "\n" not in message
        assert "user id 2" in message and "user id 3" in message and "user id 1" not in message
        assert "longer than 150 characters" in message
        assert _usernames() == ["ok", long_name, " padded "]
    finally:
        with db.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM users WHERE id IN (2, 3)"))
        upgrade()
    assert _usernames() == ["ok"]


def test_update_tenant_validates(runner, tenant):
    for args, fragment in [
        (["--cors-origin", "https://app.example/path"], "cors origin"),
        (["--cors-origin", "ftp://app.example"], "cors origin"),
        (["--password-min-length", "0"], "--password-min-length"),
        (["--reuse-interval", "301"], "--reuse-interval"),
        ([], "nothing to change"),
        (["--cors-origin", "https://a.example", "--no-cors-origins"], "either"),
    ]:
        assert_one_error_line(runner.invoke(args=["tenants", "update", "acme", *args]), fragment)
    assert_one_error_line(runner.invoke(args=["tenants", "update", "nope", "--access-ttl", "5"]),
                          "unknown tenant")


def test_update_tenant_changes_settings(app, runner, tenant):
    result = runner.invoke(args=["tenants", "update", "acme", "--access-ttl", "60",
                                 "--reuse-interval", "3", "--cors-origin", "HTTPS://App.Example",
                                 "--cors-origin", "http://localhost:3000"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        [acme] = tenants.list_tenants()
        db.session.remove()
    assert (acme.access_ttl, acme.reuse_interval) == (60, 3)
    assert acme.cors_origins == ("https://app.example", "http://localhost:3000")
    assert acme.refresh_ttl == tenants.DEFAULT_REFRESH_TTL  # untouched
    runner.invoke(args=["tenants", "update", "acme", "--no-cors-origins"])
    with app.app_context():
        assert tenants.list_tenants()[0].cors_origins == ()
        db.session.remove()
