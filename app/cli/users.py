"""`flask users`: create, disable, enable, set-password, reset-link (SPEC §7)."""
from __future__ import annotations

import click
from flask import current_app

from app.cli.support import BatonGroup
from app.cli.support import password_stdin_option
from app.cli.support import read_password
from app.cli.support import service_errors
from app.cli.support import utcnow
from app.services.accounts import users
from app.services.errors import UsernameTaken
from app.services.tenancy import tenants

users_cli = BatonGroup("users", help="Manage users of a tenant.")


@users_cli.command("create")
@click.argument("tenant")
@click.argument("username")
@password_stdin_option
@service_errors
def create_user(tenant: str, username: str, password_stdin: bool) -> None:
    """Create a user; the password is prompted for twice unless --password-stdin."""
    if not tenants.tenant_exists(tenant):  # before prompting, not after
        raise click.ClickException(f"unknown tenant {tenant!r}")
    existing = users.find_user(tenant, username)  # likewise (normalised as at login)
    if existing:
        raise UsernameTaken(existing.username, tenant)
    created = users.create_user(tenant, username, read_password(password_stdin), utcnow())
    click.echo(f"Created user {created.username!r} in tenant {tenant!r}.")


@users_cli.command("disable")
@click.argument("tenant")
@click.argument("username")
@service_errors
def disable_user(tenant: str, username: str) -> None:
    """Disable a user and revoke all of their sessions."""
    revoked = users.disable_user(tenant, username, utcnow())
    click.echo(f"Disabled {username!r} in tenant {tenant!r}; revoked {revoked} session(s).")


@users_cli.command("enable")
@click.argument("tenant")
@click.argument("username")
@service_errors
def enable_user(tenant: str, username: str) -> None:
    """Enable a disabled user (their old sessions stay revoked)."""
    users.enable_user(tenant, username, utcnow())
    click.echo(f"Enabled {username!r} in tenant {tenant!r}.")


@users_cli.command("set-password")
@click.argument("tenant")
@click.argument("username")
@password_stdin_option
@service_errors
def set_password(tenant: str, username: str, password_stdin: bool) -> None:
    """Set a user's password and revoke all of their sessions."""
    revoked = users.set_password(tenant, username, read_password(password_stdin), utcnow())
    click.echo(f"Password of {username!r} set; revoked {revoked} session(s).")


@users_cli.command("reset-link")
@click.argument("tenant")
@click.argument("username")
@service_errors
def reset_link(tenant: str, username: str) -> None:
    """Print a single-use, time-limited password reset token for the user."""
    from app.services.accounts.password_reset import issue_reset_token

    token = issue_reset_token(tenant, username)
    ttl = current_app.config["RESET_TOKEN_TTL_S"]
    click.echo(f"Reset token for {username!r} (valid {ttl} s, single use):\n{token}\n")
    click.echo(f"Use it: POST /v1/tenants/{tenant}/password/reset "
               '{"token": "<token>", "new_password": "<new password>"}')
