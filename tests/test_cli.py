"""Operator CLI (SPEC §7): success paths and one-line errors."""
from __future__ import annotations

import pytest

from app.cli import support
from app.extensions import db
from app.services.signin import password_grant
from tests.helpers import utcnow


def assert_one_error_line(result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def terminal(monkeypatch):
    """The CLI runner's stdin stands in for a terminal (the prompt is simulated by click)."""
    monkeypatch.setattr(support, "stdin_is_terminal", lambda: True)


def test_tenants_create_and_list(runner):
    result = runner.invoke(args=["tenants", "create", "acme", "--name", "Acme Inc",
                                 "--reuse-interval", "5", "--access-ttl", "300"])
    assert result.exit_code == 0, result.output
    listing = runner.invoke(args=["tenants", "list"])
    assert listing.exit_code == 0
    row = next(line for line in listing.output.splitlines() if line.startswith("acme"))
    assert "300" in row and " 5 " in row and "Acme Inc" in row


def test_tenants_list_empty(runner):
    assert "No tenants." in runner.invoke(args=["tenants", "list"]).output


def test_duplicate_tenant(runner, tenant):
    assert_one_error_line(runner.invoke(args=["tenants", "create", tenant]), "already exists")


@pytest.mark.parametrize("args, fragment", [
    (["tenants", "create", "x", "--reuse-interval", "abc"], "--reuse-interval"),
    (["tenants", "create", "x", "--reuse-interval", "301"], "--reuse-interval"),
    (["tenants", "create", "x", "--access-ttl", "0"], "--access-ttl"),
    (["tenants", "create", "Not_A_Slug"], "slug"),
    (["tenants", "create"], "SLUG"),
    (["users", "create", "acme"], "USERNAME"),
])
def test_bad_options(runner, args, fragment):
    assert_one_error_line(runner.invoke(args=args), fragment)


def test_users_create_with_prompt(runner, tenant, app, terminal):
    result = runner.invoke(args=["users", "create", tenant, "bob"], input="s3cret-pw\ns3cret-pw\n")
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert password_grant.login(tenant, "bob", "s3cret-pw", now=utcnow()).refresh_token
        db.session.remove()


def test_users_create_prompt_mismatch_then_match(runner, tenant, terminal):
    result = runner.invoke(args=["users", "create", tenant, "bob"],
                           input="first one\nsecond one\nthird one\nthird one\n")
    assert result.exit_code == 0, result.output


def test_users_create_password_stdin(runner, tenant, app):
    result = runner.invoke(args=["users", "create", tenant, "Carol", "--password-stdin"],
                           input="from stdin\n")
    assert result.exit_code == 0, result.output
    assert "Created user 'carol'" in result.output  # the name as stored and logged in with
    with app.app_context():
        assert password_grant.login(tenant, "carol", "from stdin", now=utcnow()).session_id
        db.session.remove()


def test_users_create_unknown_tenant(runner):
    result = runner.invoke(args=["users", "create", "nope", "bob", "--password-stdin"],
                           input="hunter2hunter2\n")
    assert_one_error_line(result, "unknown tenant")


def test_users_create_empty_password(runner, tenant):
    result = runner.invoke(args=["users", "create", tenant, "bob", "--password-stdin"], input="\n")
    assert_one_error_line(result, "password")


def test_users_create_duplicate(runner, user, tenant):
    result = runner.invoke(args=["users", "create", tenant, "alice", "--password-stdin"],
                           input="hunter2hunter2\n")
    assert_one_error_line(result, "already exists")


def test_users_create_existing_user_is_refused_before_the_prompt(runner, user, tenant,
                                                                terminal):
    """Said at once, like an unknown tenant: no password typed twice for nothing."""
    result = runner.invoke(args=["users", "create", tenant, "ALICE"],
                           input="a long password\na long password\n")
    assert "Password" not in result.output
    assert_one_error_line(result, "user 'alice' already exists in tenant 'acme'")


def test_demo_refused_outside_development(runner):
    assert_one_error_line(runner.invoke(args=["demo"]), "development")


def test_slug_with_trailing_newline_is_refused_in_one_line(runner):
    # `$` alone matches before a final newline; the slug check is a full match.
    assert_one_error_line(runner.invoke(args=["tenants", "create", "acme\n"]), "slug")
    assert_one_error_line(runner.invoke(args=["tenants", "create", "acme\n", "--name", "x"]))
