"""`flask demo`: the demo tenant and user of `make run` (development only)."""
from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.support import service_errors
from app.cli.support import utcnow


@click.command("demo")
@with_appcontext
@service_errors
def demo() -> None:
    """Development only: create the demo tenant and user if absent and say how to log in."""
    from app.services.maintenance.demo import ensure_demo

    if current_app.config["ENV_NAME"] != "development":
        raise click.ClickException("the demo command runs only with BATON_ENV=development")
    username, password, path = ensure_demo(current_app.instance_path, utcnow(),
                                           current_app.config["BASE_URL"])
    click.echo(f"Demo tenant 'demo', user {username!r}, password {password!r} (saved in {path}).")
