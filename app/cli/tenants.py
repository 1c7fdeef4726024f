"""`flask tenants`: create, update, list, show and set-webhook (SPEC §7, §10)."""
from __future__ import annotations

import dataclasses
from typing import Any
from typing import Callable

import click
from flask import current_app

from app.cli.support import BatonGroup
from app.cli.support import service_errors
from app.cli.support import utcnow
from app.services.tenancy import tenants
from app.services.tenancy import webhook_endpoints
from app.services.tenancy.lookup import rp_id_in_effect

tenants_cli = BatonGroup("tenants", help="Create and list tenants.")


def _sign_in_options(create: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """SPEC §13.4's tenant options; `create` gives them their defaults, `update` none."""
    def default(value: Any) -> dict[str, Any]:
        return {"default": value, "show_default": True} if create else {"default": None}

    options = [
        click.option("--mfa", type=click.Choice(tenants.MFA_POLICIES), **default("optional"),
                     help="required: every sign-in uses a second factor (enrolled in the "
                          "flow when missing)."),
        click.option("--password-grant/--no-password-grant", **default(True),
                     help="Offer the password grant at the token endpoint (off: only the "
                          "challenge flow signs users in)."),
        click.option("--step-up-max-age", type=click.IntRange(1, 86_400),
                     **default(tenants.DEFAULT_STEP_UP_MAX_AGE),
                     help="Seconds a sign-in stays recent enough to change second factors."),
        click.option("--webauthn-rp-id", metavar="HOST",
                     help="The passkeys' relying party ID (default: the host of "
                          "BATON_BASE_URL" + ("" if create else "; '' goes back to it") + ")."),
        click.option("--webauthn-origin", "webauthn_origins", multiple=True, metavar="URL",
                     help="An app origin allowed to use passkeys (repeatable" +
                          ("" if create else "; replaces the list") + ")."),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


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
@_sign_in_options(create=True)
@service_errors
def create_tenant(slug: str, name: str | None, cors_origins: tuple[str, ...],
                  webauthn_origins: tuple[str, ...], webauthn_rp_id: str | None,
                  **options: Any) -> None:
    """Create a tenant and its first signing key."""
    settings = tenants.TenantSettings(
        slug, name or slug, cors_origins=tuple(cors_origins),
        webauthn_origins=tuple(webauthn_origins), webauthn_rp_id=webauthn_rp_id or None,
        **options)
    tenants.create_tenant(settings, utcnow())
    click.echo(f"Created tenant {slug!r}.")
    _warn(tenants.tenant_settings(slug))


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
@_sign_in_options(create=False)
@click.option("--no-webauthn-origins", is_flag=True, help="Allow no passkey origin.")
@service_errors
def update_tenant(slug: str, cors_origins: tuple[str, ...], no_cors_origins: bool,
                  webauthn_origins: tuple[str, ...], no_webauthn_origins: bool,
                  **options: Any) -> None:
    """Change settings of a tenant; every node applies them within the tenant cache window."""
    changes = {name: value for name, value in options.items() if value is not None}
    for name, given, none in (("cors_origins", cors_origins, no_cors_origins),
                              ("webauthn_origins", webauthn_origins, no_webauthn_origins)):
        flag = name.replace("_", "-")
        if given and none:
            raise click.ClickException(f"use either --{flag[:-1]} or --no-{flag}, not both")
        if given or none:
            changes[name] = tuple(given)
    if changes.get("webauthn_rp_id") == "":
        changes["webauthn_rp_id"] = None  # back to the host of BATON_BASE_URL
    if not changes:
        raise click.ClickException("nothing to change: give at least one option (see --help)")
    updated = tenants.update_tenant(slug, **changes)
    window = current_app.config["TENANT_CACHE_S"]
    click.echo(f"Updated tenant {slug!r} ({', '.join(sorted(changes))}); "
               f"every node applies it within {window} s.")
    _warn(updated)


def _warn(settings: tenants.TenantSettings) -> None:
    """Passkey settings that are valid but that no browser will accept: said, not refused."""
    for warning in tenants.relying_party_warnings(settings):
        click.echo(f"Warning: {warning}", err=True)


@tenants_cli.command("list")
@service_errors
def list_tenants() -> None:
    """List tenants, their lifetimes and sign-in policy."""
    rows = tenants.list_tenants()
    if not rows:
        click.echo("No tenants.")
        return
    click.echo(f"{'slug':<24} {'access':>7} {'refresh':>8} {'session':>8} {'reuse':>5} "
               f"{'mfa':<8} {'password':<8}  name")
    for t in rows:
        click.echo(f"{t.slug:<24} {t.access_ttl:>7} {t.refresh_ttl:>8} {t.session_ttl:>8} "
                   f"{t.reuse_interval:>5} {t.mfa:<8} {'on' if t.password_grant else 'off':<8}"
                   f"  {t.name}")


@tenants_cli.command("show")
@click.argument("slug")
@service_errors
def show_tenant(slug: str) -> None:
    """Every setting of one tenant, origins and relying party included."""
    settings = tenants.tenant_settings(slug)
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, tuple):
            value = ", ".join(value) or "-"
        elif isinstance(value, bool):
            value = "on" if value else "off"
        elif value is None and field.name == "webauthn_rp_id":
            host = rp_id_in_effect(None, current_app.config["BASE_URL"])
            value = f"- (the host of BATON_BASE_URL: {host})"
        click.echo(f"{field.name:<20} {value}")
    _warn(settings)


@tenants_cli.command("set-webhook")
@click.argument("tenant")
@click.argument("url", required=False)
@click.option("--disable", is_flag=True, help="Remove the tenant's webhook.")
@service_errors
def set_webhook(tenant: str, url: str | None, disable: bool) -> None:
    """Send the tenant's security events to URL; prints the signing secret once."""
    if disable:
        if url:
            raise click.ClickException("give either a URL or --disable, not both")
        dropped = webhook_endpoints.disable_webhook(tenant)
        click.echo(f"Webhook of tenant {tenant!r} removed; {dropped} undelivered event(s) "
                   "will not be sent.")
        return
    if not url:
        raise click.ClickException("a webhook URL is required (or --disable)")
    secret = webhook_endpoints.set_webhook(tenant, url, utcnow())
    click.echo(f"Webhook of tenant {tenant!r} set to {url}. Its signing secret (shown only "
               "now; verify deliveries with a Standard Webhooks library):")
    click.echo(secret)
