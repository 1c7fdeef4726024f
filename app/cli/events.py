"""`flask events deliver` and `flask events endpoints`: the event outbox's delivery to
tenants' webhooks, and its health per endpoint (SPEC §10)."""
from __future__ import annotations

import signal
from datetime import datetime
from datetime import timezone

import click
from flask import current_app

from app.cli.support import BatonGroup
from app.cli.support import keep_outage_log
from app.cli.support import service_errors
from app.services.audit import deliverer
from app.services.tenancy import webhook_endpoints

events_cli = BatonGroup("events", help="Deliver security events to tenants' webhooks.")


@events_cli.command("deliver")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (for cron).")
@click.option("--timeout", type=click.IntRange(1, 120), default=None, metavar="SECONDS",
              help="Cut off each POST after this long [BATON_WEBHOOK_TIMEOUT_S, 15].")
@click.option("--concurrency", type=click.IntRange(1, 64), default=None, metavar="N",
              help="POST to this many endpoints at once [BATON_WEBHOOK_CONCURRENCY, 8].")
@service_errors
def deliver(once: bool, timeout: int | None, concurrency: int | None) -> None:
    """POST pending events to their webhooks, with retries; runs until stopped."""
    stop = []
    if not once:  # finish the POSTs in flight on SIGTERM/SIGINT, then exit
        keep_outage_log()  # it waits for the database: say so in the log
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.append(True))
    report = deliverer.deliver(
        once=once, should_stop=lambda: bool(stop),
        timeout_s=timeout or current_app.config["WEBHOOK_TIMEOUT_S"],
        concurrency=concurrency or current_app.config["WEBHOOK_CONCURRENCY"])
    click.echo(f"Delivered {report.delivered} event(s); {report.retried} to retry later, "
               f"{report.failed} failed for good.")


def _when(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


@events_cli.command("endpoints")
@click.option("--failing", is_flag=True, help="Only endpoints whose last delivery failed.")
@service_errors
def endpoints(failing: bool) -> None:
    """Webhook endpoints and their delivery health: which one is failing, since when."""
    rows = webhook_endpoints.endpoint_states(failing)
    if not rows:
        click.echo("No failing webhook endpoints." if failing else "No webhook endpoints.")
        return
    click.echo(f"{'tenant':<24} {'pending':>7} {'failures':>8}  {'circuit open since':<20}  "
               f"{'next attempt':<20}  url / last error")
    for e in rows:
        click.echo(f"{e.tenant:<24} {e.pending:>7} {e.consecutive_failures:>8}  "
                   f"{_when(e.circuit_opened_at):<20}  {_when(e.next_attempt_at):<20}  {e.url}")
        if e.last_error:
            click.echo(f"{'':<24} {'':>7} {'':>8}  {'':<20}  {'':<20}  {e.last_error}")
