"""`flask keys`: rotate a tenant's signing key, re-encrypt every secret (SPEC §6, §11)."""
from __future__ import annotations

import click

from app.cli.support import BatonGroup
from app.cli.support import service_errors
from app.cli.support import utcnow
from app.services.tenancy import signing_keys

keys_cli = BatonGroup("keys", help="Manage signing keys.")


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
    """Re-encrypt every private signing key (and webhook and TOTP secret) under the current
    SECRET_KEY.

    Run after adding the previous secret to SECRET_KEY_FALLBACKS and deploying the new
    SECRET_KEY (docs/operations.md); safe while serving, and safe to run again.
    """
    from app.services.accounts import factors
    from app.services.tenancy import webhook_endpoints

    report = signing_keys.reencrypt_keys()
    hooks_moved, hooks_failed = webhook_endpoints.reencrypt_secrets()
    totp_moved, totp_failed = factors.reencrypt_secrets()
    click.echo(f"Re-encrypted {report.reencrypted} signing key(s); "
               f"{report.current} already under the current secret. "
               f"Re-encrypted {hooks_moved} webhook secret(s) and {totp_moved} TOTP secret(s).")
    problems = []
    if report.undecryptable:
        problems.append(f"{len(report.undecryptable)} signing key(s) no configured secret "
                        "decrypts: " + " ".join(report.undecryptable))
    if hooks_failed:
        problems.append(f"{hooks_failed} webhook secret(s) no configured secret decrypts")
    if totp_failed:
        problems.append(f"{totp_failed} TOTP secret(s) no configured secret decrypts")
    if problems:
        raise click.ClickException("; ".join(problems))
