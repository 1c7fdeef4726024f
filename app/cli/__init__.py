"""Operator commands (SPEC §7): one module per `flask` command group, each command a thin
wrapper that parses options and calls a service; what they share is in `support`."""
from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    """Add every Baton command group to `flask` (called by create_app)."""
    from app.cli.admin_keys import admin_keys_cli
    from app.cli.demo import demo
    from app.cli.events import events_cli
    from app.cli.keys import keys_cli
    from app.cli.tenants import tenants_cli
    from app.cli.tokens import tokens_cli
    from app.cli.users import users_cli

    for group in (tenants_cli, users_cli, keys_cli, tokens_cli, admin_keys_cli, events_cli, demo):
        app.cli.add_command(group)
