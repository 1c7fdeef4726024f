"""`flask tokens purge`: batched, paced removal of what expired or was revoked (SPEC §7)."""
from __future__ import annotations

import sys
from datetime import timedelta

import click

from app.cli.support import BatonGroup
from app.cli.support import Duration
from app.cli.support import service_errors
from app.cli.support import utcnow
from app.services.maintenance.purge import DEFAULT_DUTY_CYCLE
from app.services.maintenance.purge import PurgeReport

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
