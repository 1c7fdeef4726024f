"""Operator commands (SPEC §7): thin wrappers that parse options and call a service."""
from __future__ import annotations

import functools
import sys
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import click
from flask import Flask
from flask import current_app
from flask.cli import AppGroup
from flask.cli import with_appcontext

from app.errors import OAuthError
from app.services import keys
from app.services import tenants
from app.services import users


class BatonGroup(AppGroup):
    """A command group whose mistakes print one `Error:` line, never usage or a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise click.ClickException(exc.format_message()) from None


def service_errors(func):
    """Turn a service's refusal into `Error: <reason>` and exit 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except OAuthError as exc:
            raise click.ClickException(exc.description) from None

    return wrapper


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


tenants_cli = BatonGroup("tenants", help="Create and list tenants.")
users_cli = BatonGroup("users", help="Manage users of a tenant.")
keys_cli = BatonGroup("keys", help="Manage signing keys.")


@tenants_cli.command("create")
@click.argument("slug")
@click.option("--name", help="Display name (defaults to the slug).")
@click.option("--reuse-interval", type=click.IntRange(0, 300),
              default=tenants.DEFAULT_REUSE_INTERVAL, show_default=True,
              help="Seconds a rotated token may be presented again for the same successor.")
@click.option("--access-ttl", type=click.IntRange(min=1), default=tenants.DEFAULT_ACCESS_TTL,
              show_default=True, help="Access token lifetime, seconds.")
@click.option("--refresh-ttl", type=click.IntRange(min=1), default=tenants.DEFAULT_REFRESH_TTL,
              show_default=True, help="Refresh token idle lifetime, seconds.")
@click.option("--session-ttl", type=click.IntRange(min=1), default=tenants.DEFAULT_SESSION_TTL,
              show_default=True, help="Absolute session lifetime, seconds.")
@service_errors
def create_tenant(slug, name, reuse_interval, access_ttl, refresh_ttl, session_ttl) -> None:
    """Create a tenant and its first signing key."""
    settings = tenants.TenantSettings(slug, name or slug, access_ttl, refresh_ttl, session_ttl,
                                      reuse_interval)
    tenants.create_tenant(settings, utcnow())
    click.echo(f"Created tenant {slug!r}.")


@tenants_cli.command("list")
@service_errors
def list_tenants() -> None:
    """List tenants and their lifetimes."""
    rows = tenants.list_tenants()
    if not rows:
        click.echo("No tenants.")
        return
    click.echo(f"{'slug':<24} {'access':>7} {'refresh':>8} {'session':>8} {'reuse':>5}  name")
    for t in rows:
        click.echo(f"{t.slug:<24} {t.access_ttl:>7} {t.refresh_ttl:>8} {t.session_ttl:>8} "
                   f"{t.reuse_interval:>5}  {t.name}")


password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input.")


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or prompted twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, default="",
                        show_default=False)


@users_cli.command("create")
@click.argument("tenant")
@click.argument("username")
@password_stdin_option
@service_errors
def create_user(tenant, username, password_stdin) -> None:
    """Create a user; the password is prompted for twice unless --password-stdin."""
    if not tenants.tenant_exists(tenant):  # before prompting, not after
        raise click.ClickException(f"unknown tenant {tenant!r}")
    users.create_user(tenant, username, read_password(password_stdin), utcnow())
    click.echo(f"Created user {username!r} in tenant {tenant!r}.")


@users_cli.command("disable")
@click.argument("tenant")
@click.argument("username")
@service_errors
def disable_user(tenant, username) -> None:
    """Disable a user and revoke all of their sessions."""
    revoked = users.disable_user(tenant, username, utcnow())
    click.echo(f"Disabled {username!r} in tenant {tenant!r}; revoked {revoked} session(s).")


@users_cli.command("set-password")
@click.argument("tenant")
@click.argument("username")
@password_stdin_option
@service_errors
def set_password(tenant, username, password_stdin) -> None:
    """Set a user's password and revoke all of their sessions."""
    revoked = users.set_password(tenant, username, read_password(password_stdin), utcnow())
    click.echo(f"Password of {username!r} set; revoked {revoked} session(s).")


@users_cli.command("reset-link")
@click.argument("tenant")
@click.argument("username")
@service_errors
def reset_link(tenant, username) -> None:
    """Print a single-use, time-limited password reset token for the user."""
    from app.services.password_reset import issue_reset_token

    token = issue_reset_token(tenant, username)
    ttl = current_app.config["RESET_TOKEN_TTL_S"]
    click.echo(f"Reset token for {username!r} (valid {ttl} s, single use):\n{token}\n")
    click.echo(f"Use it: POST /v1/tenants/{tenant}/password/reset "
               '{"token": "<token>", "new_password": "<new password>"}')


@keys_cli.command("rotate")
@click.argument("tenant")
@service_errors
def rotate_key(tenant) -> None:
    """Make a new current signing key; the old one stays published until its tokens expire."""
    kid = keys.rotate_key(tenant, utcnow())
    click.echo(f"New signing key {kid} for tenant {tenant!r}.")


@keys_cli.command("reencrypt")
@service_errors
def reencrypt_keys() -> None:
    """Re-encrypt every private signing key under the current SECRET_KEY.

    Run after adding the previous secret to SECRET_KEY_FALLBACKS and deploying the new
    SECRET_KEY (docs/operations.md); safe while serving, and safe to run again.
    """
    report = keys.reencrypt_keys()
    click.echo(f"Re-encrypted {report.reencrypted} signing key(s); "
               f"{report.current} already under the current secret.")
    if report.undecryptable:
        raise click.ClickException(
            f"{len(report.undecryptable)} signing key(s) no configured secret decrypts: "
            + " ".join(report.undecryptable))


@click.command("demo")
@with_appcontext
@service_errors
def demo() -> None:
    """Development only: create the demo tenant and user if absent and say how to log in."""
    from app.services.demo import ensure_demo

    if current_app.config["ENV_NAME"] != "development":
        raise click.ClickException("the demo command runs only with BATON_ENV=development")
    username, password, path = ensure_demo(current_app.instance_path, utcnow())
    click.echo(f"Demo tenant 'demo', user {username!r}, password {password!r} (saved in {path}).")


class Duration(click.ParamType):
    """`30s`, `15m`, `12h`, `7d` (or plain seconds) as a timedelta."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value, param, ctx) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        number, unit = (text[:-1], text[-1]) if text[-1:] in self.UNITS else (text, "s")
        if not number.isdigit():
            self.fail(f"{value!r} is not a duration like 30s, 15m, 12h or 7d", param, ctx)
        return timedelta(seconds=int(number) * self.UNITS[unit])


tokens_cli = BatonGroup("tokens", help="Maintain the token tables.")


@tokens_cli.command("purge")
@click.option("--retention", type=Duration(), default="7d", show_default=True,
              help="Keep what expired or was revoked less than this long ago.")
@click.option("--batch-size", type=click.IntRange(1, 100000), default=1000, show_default=True,
              help="Rows per transaction.")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option("--tenant", help="Only this tenant.")
@service_errors
def purge_tokens(retention, batch_size, dry_run, tenant) -> None:
    """Remove expired and revoked sessions and tokens in short batches (safe while serving)."""
    from app.services.purge import purge

    progress = _progress_line if sys.stderr.isatty() and not dry_run else None
    report = purge(utcnow(), retention, batch_size, tenant_slug=tenant, dry_run=dry_run,
                   progress=progress)
    if progress:
        click.echo("", err=True)
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {report.sessions} session(s) and {report.tokens} refresh token(s) "
               f"in {report.elapsed_s:.2f}s"
               + ("" if dry_run else f" ({report.batches} batch(es), longest "
                                     f"{report.longest_batch_s * 1000:.0f} ms)"))


def _progress_line(report) -> None:
    click.echo(f"\r  {report.sessions} sessions, {report.tokens} tokens, "
               f"{report.batches} batches...", nl=False, err=True)


def register_commands(app: Flask) -> None:
    for group in (tenants_cli, users_cli, keys_cli, tokens_cli, demo):
        app.cli.add_command(group)
