"""Operator commands (SPEC §7): thin wrappers that parse options and call a service."""
from __future__ import annotations

import sys
from datetime import datetime
from datetime import timedelta
from typing import Any

import click
from flask import Flask
from flask import current_app
from flask.cli import with_appcontext

from app.cli_support import BatonGroup
from app.cli_support import service_errors
from app.cli_support import utcnow
from app.services.accounts import users
from app.services.maintenance.purge import DEFAULT_DUTY_CYCLE
from app.services.maintenance.purge import PurgeReport
from app.services.tenancy import admin_keys
from app.services.tenancy import signing_keys
from app.services.tenancy import tenants

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
@click.option("--password-min-length", type=click.IntRange(1, 1024),
              default=tenants.DEFAULT_PASSWORD_MIN_LENGTH, show_default=True,
              help="Shortest password accepted (characters after NFC).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="URL",
              help="A browser origin allowed to call the token endpoints (repeatable).")
@service_errors
def create_tenant(slug: str, name: str | None, reuse_interval: int, access_ttl: int,
                  refresh_ttl: int, session_ttl: int, password_min_length: int,
                  cors_origins: tuple[str, ...]) -> None:
    """Create a tenant and its first signing key."""
    settings = tenants.TenantSettings(slug, name or slug, access_ttl, refresh_ttl, session_ttl,
                                      reuse_interval, password_min_length, tuple(cors_origins))
    tenants.create_tenant(settings, utcnow())
    click.echo(f"Created tenant {slug!r}.")


@tenants_cli.command("update")
@click.argument("slug")
@click.option("--name", help="Display name.")
@click.option("--reuse-interval", type=click.IntRange(0, 300), help="Seconds (0-300).")
@click.option("--access-ttl", type=click.IntRange(min=1), help="Access token lifetime, seconds.")
@click.option("--refresh-ttl", type=click.IntRange(min=1), help="Refresh idle lifetime, seconds.")
@click.option("--session-ttl", type=click.IntRange(min=1), help="Absolute session lifetime, s.")
@click.option("--password-min-length", type=click.IntRange(1, 1024),
              help="Shortest password accepted from now on.")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="URL",
              help="Replace the allowed browser origins with these (repeatable).")
@click.option("--no-cors-origins", is_flag=True, help="Allow no browser origin.")
@service_errors
def update_tenant(slug: str, cors_origins: tuple[str, ...], no_cors_origins: bool,
                  **options: Any) -> None:
    """Change settings of a tenant; every node applies them within the tenant cache window."""
    changes = {name: value for name, value in options.items() if value is not None}
    if cors_origins and no_cors_origins:
        raise click.ClickException("use either --cors-origin or --no-cors-origins, not both")
    if cors_origins or no_cors_origins:
        changes["cors_origins"] = tuple(cors_origins)
    if not changes:
        raise click.ClickException("nothing to change: give at least one option (see --help)")
    tenants.update_tenant(slug, **changes)
    window = current_app.config["TENANT_CACHE_S"]
    click.echo(f"Updated tenant {slug!r} ({', '.join(sorted(changes))}); "
               f"every node applies it within {window} s.")


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


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or prompted twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not stdin_is_terminal():
        # getpass would fall back to an echoing prompt with a GetPassWarning.
        raise click.ClickException("standard input is not a terminal: pass --password-stdin "
                                   "to read the password from it")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, default="",
                        show_default=False)


@users_cli.command("create")
@click.argument("tenant")
@click.argument("username")
@password_stdin_option
@service_errors
def create_user(tenant: str, username: str, password_stdin: bool) -> None:
    """Create a user; the password is prompted for twice unless --password-stdin."""
    if not tenants.tenant_exists(tenant):  # before prompting, not after
        raise click.ClickException(f"unknown tenant {tenant!r}")
    users.create_user(tenant, username, read_password(password_stdin), utcnow())
    click.echo(f"Created user {username!r} in tenant {tenant!r}.")


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


@keys_cli.command("rotate")
@click.argument("tenant")
@service_errors
def rotate_key(tenant: str) -> None:
    """Make a new current signing key; the old one stays published until its tokens expire."""
    kid = signing_keys.rotate_key(tenant, utcnow())
    click.echo(f"New signing key {kid} for tenant {tenant!r}.")


@keys_cli.command("reencrypt")
@service_errors
def reencrypt_keys() -> None:
    """Re-encrypt every private signing key under the current SECRET_KEY.

    Run after adding the previous secret to SECRET_KEY_FALLBACKS and deploying the new
    SECRET_KEY (docs/operations.md); safe while serving, and safe to run again.
    """
    from app.services.tenancy import webhook_endpoints

    report = signing_keys.reencrypt_keys()
    hooks_moved, hooks_failed = webhook_endpoints.reencrypt_secrets()
    click.echo(f"Re-encrypted {report.reencrypted} signing key(s); "
               f"{report.current} already under the current secret. "
               f"Re-encrypted {hooks_moved} webhook secret(s).")
    problems = []
    if report.undecryptable:
        problems.append(f"{len(report.undecryptable)} signing key(s) no configured secret "
                        "decrypts: " + " ".join(report.undecryptable))
    if hooks_failed:
        problems.append(f"{hooks_failed} webhook secret(s) no configured secret decrypts")
    if problems:
        raise click.ClickException("; ".join(problems))


@click.command("demo")
@with_appcontext
@service_errors
def demo() -> None:
    """Development only: create the demo tenant and user if absent and say how to log in."""
    from app.services.maintenance.demo import ensure_demo

    if current_app.config["ENV_NAME"] != "development":
        raise click.ClickException("the demo command runs only with BATON_ENV=development")
    username, password, path = ensure_demo(current_app.instance_path, utcnow())
    click.echo(f"Demo tenant 'demo', user {username!r}, password {password!r} (saved in {path}).")


class Duration(click.ParamType):
    """`30s`, `15m`, `12h`, `7d` as a timedelta; a bare number is refused (7 is not 7 days)."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        number, unit = text[:-1], text[-1:]
        if number.isdigit() and unit in self.UNITS:
            return timedelta(seconds=int(number) * self.UNITS[unit])
        if text.isdigit():
            self.fail(f"{value!r} has no unit: write {text}s, {text}m, {text}h or {text}d",
                      param, ctx)
        self.fail(f"{value!r} is not a duration like 30s, 15m, 12h or 7d", param, ctx)


tokens_cli = BatonGroup("tokens", help="Maintain the token tables.")


@tokens_cli.command("purge")
@click.option("--retention", type=Duration(), default="7d", show_default=True,
              help="Keep what expired or was revoked less than this long ago.")
@click.option("--batch-size", type=click.IntRange(1, 100000), default=1000, show_default=True,
              help="Rows per transaction.")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option("--tenant", help="Only this tenant.")
@click.option("--duty-cycle", type=click.IntRange(1, 100),
              default=round(DEFAULT_DUTY_CYCLE * 100), show_default=True,
              help="Percent of the time spent in batches; it rests the rest, so that live "
                   "refreshes keep their CPU. 100 runs flat out.")
@service_errors
def purge_tokens(retention: timedelta, batch_size: int, dry_run: bool,
                 tenant: str | None, duty_cycle: int) -> None:
    """Remove expired and revoked sessions and tokens in short batches (safe while serving)."""
    from app.services.maintenance.purge import purge

    progress = _progress_line if sys.stderr.isatty() and not dry_run else None
    report = purge(utcnow(), retention, batch_size, tenant_slug=tenant, dry_run=dry_run,
                   progress=progress, duty_cycle=duty_cycle / 100)
    if progress:
        click.echo("", err=True)
    verb = "Would remove" if dry_run else "Removed"
    click.echo(f"{verb} {report.sessions} session(s), {report.tokens} refresh token(s) "
               f"and {report.events} event(s) in {report.elapsed_s:.2f}s"
               + ("" if dry_run else f" ({report.batches} batch(es), longest "
                                     f"{report.longest_batch_s * 1000:.0f} ms, busy "
                                     f"{report.busy_s:.2f}s)"))


def _progress_line(report: PurgeReport) -> None:
    click.echo(f"\r  {report.sessions} sessions, {report.tokens} tokens, "
               f"{report.batches} batches...", nl=False, err=True)


admin_keys_cli = BatonGroup("admin-keys", help="Manage a tenant's admin API keys.")


@admin_keys_cli.command("create")
@click.argument("tenant")
@click.option("--name", help="What the key is for (shown by list).")
@click.option("--scope", type=click.Choice(["admin", "introspect"]), default="admin",
              show_default=True, help="admin: the whole admin API; introspect: only introspection.")
@service_errors
def create_admin_key(tenant: str, name: str | None, scope: str) -> None:
    """Create an admin key; it is printed once, alone on the last line."""
    key_id, key = admin_keys.create_key(tenant, name, scope, utcnow())
    click.echo(f"Admin key {key_id} (scope {scope}) for tenant {tenant!r}. "
               "Store it now: it is not shown again.")
    click.echo(key)


@admin_keys_cli.command("list")
@click.argument("tenant")
@service_errors
def list_admin_keys(tenant: str) -> None:
    """List a tenant's admin keys (never the keys themselves)."""
    rows = admin_keys.list_keys(tenant)
    if not rows:
        click.echo("No admin keys.")
        return
    click.echo(f"{'id':>6} {'scope':<10} {'created':<20} {'last used':<20} {'status':<8} name")
    for k in rows:
        click.echo(f"{k.id:>6} {k.scope:<10} {_when(k.created_at):<20} "
                   f"{_when(k.last_used_at):<20} {'revoked' if k.revoked_at else 'active':<8} "
                   f"{k.name}")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "never"


@admin_keys_cli.command("revoke")
@click.argument("tenant")
@click.argument("key_id", type=click.IntRange(min=1))
@service_errors
def revoke_admin_key(tenant: str, key_id: int) -> None:
    """Revoke an admin key at once (every node: keys are not cached)."""
    if admin_keys.revoke_key(tenant, key_id, utcnow()):
        click.echo(f"Revoked admin key {key_id} of tenant {tenant!r}.")
    else:
        click.echo(f"Admin key {key_id} of tenant {tenant!r} was already revoked.")


def register_commands(app: Flask) -> None:
    from app.events_cli import events_cli
    from app.events_cli import set_webhook

    tenants_cli.add_command(set_webhook)

    for group in (tenants_cli, users_cli, keys_cli, tokens_cli, admin_keys_cli, events_cli, demo):
        app.cli.add_command(group)
