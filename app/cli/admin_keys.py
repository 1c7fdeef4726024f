"""`flask admin-keys`: create, list and revoke a tenant's admin API keys (SPEC §9)."""
from __future__ import annotations

from datetime import datetime

import click

from app.cli.support import BatonGroup
from app.cli.support import service_errors
from app.cli.support import utcnow
from app.services.tenancy import admin_keys

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
