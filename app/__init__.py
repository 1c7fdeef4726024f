"""Baton: a multi-tenant token service with race-free refresh-token rotation.

Importing the package loads nothing: `baton-conformance` (app.conformance), a client of a
deployment installed with Baton, lives in it and must not load the server (Flask,
SQLAlchemy, config). The factory is in app.factory.
"""
from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config_class: type | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the application (app.factory.create_app)."""
    from app.factory import create_app as build

    return build(config_class, overrides)
