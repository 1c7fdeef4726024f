"""`flask events deliver`: POST the event outbox to tenants' webhooks (SPEC §10)."""
from __future__ import annotations

import signal

import click

from app.cli.support import BatonGroup
from app.cli.support import keep_outage_log
from app.cli.support import service_errors
from app.services.audit import webhooks

events_cli = BatonGroup("events", help="Deliver security events to tenants' webhooks.")


@events_cli.command("deliver")
@click.option("--once", is_flag=True, help="Deliver what is due now, then exit (for cron).")
@service_errors
def deliver(once: bool) -> None:
    """POST pending events to their webhooks, with retries; runs until stopped."""
    stop = []
    if not once:  # finish the event in hand on SIGTERM/SIGINT, then exit
        keep_outage_log()  # it waits for the database: say so in the log
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.append(True))
    report = webhooks.deliver(once=once, should_stop=lambda: bool(stop))
    click.echo(f"Delivered {report.delivered} event(s); {report.retried} to retry later, "
               f"{report.failed} failed for good.")
