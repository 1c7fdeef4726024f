"""Operator commands for webhooks and the event outbox (SPEC §10)."""
from __future__ import annotations

import signal

import click

from app.cli_support import BatonGroup
from app.cli_support import service_errors
from app.cli_support import utcnow
from app.services.audit import webhooks
from app.services.tenancy import webhook_endpoints

events_cli = BatonGroup("events", help="Deliver security events to tenants' webhooks.")


# Attached to the `tenants` group by app.cli (`flask tenants set-webhook`).
@click.command("set-webhook")
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


@events_cli.command("deliver")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (for cron).")
@service_errors
def deliver(once: bool) -> None:
    """POST pending events to their webhooks, with retries; runs until stopped."""
    stop = []
    if not once:  # finish the event in hand on SIGTERM/SIGINT, then exit
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.append(True))
    report = webhooks.deliver(once=once, should_stop=lambda: bool(stop))
    click.echo(f"Delivered {report.delivered} event(s); {report.retried} to retry later, "
               f"{report.failed} failed for good.")
