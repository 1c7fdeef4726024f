"""Fixtures in the flaskr style, on real PostgreSQL (TEST_DATABASE_URL or an embedded one).

The machinery is in plugins: tests/plugins/database.py (the database and the app),
live_server.py (a real gunicorn; its tests are marked `live`), browser.py (a headless
Chromium; its tests are marked `browser` and `slow`) and secret_leaks.py (the whole-run
check that no token or password reaches a log). Here: the domain fixtures.
"""
from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.factories import make_admin_key
from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import PASSWORD
from tests.helpers import AdminClient
from tests.helpers import TokenClient

pytest_plugins = [
    "tests.plugins.secret_leaks",
    "tests.plugins.database",
    "tests.plugins.live_server",
    "tests.plugins.browser",
    "tests.plugins.passkeys",
]


@pytest.fixture
def tenant(app: Flask) -> str:
    with app.app_context():
        make_tenant("acme", "Acme")
    return "acme"


@pytest.fixture
def user(app: Flask, tenant: str) -> tuple[str, str]:
    with app.app_context():
        make_user(tenant, "alice", PASSWORD)
    return "alice", PASSWORD


@pytest.fixture
def tokens(client: FlaskClient, tenant: str, user: tuple[str, str]) -> TokenClient:
    return TokenClient(client, tenant, *user)


@pytest.fixture
def admin_key(app: Flask, tenant: str) -> str:
    """A fresh `admin`-scope key of the acme tenant."""
    with app.app_context():
        return make_admin_key(tenant)


@pytest.fixture
def admin(client: FlaskClient, admin_key: str) -> AdminClient:
    """The Flask test client with the admin key's Authorization header."""
    return AdminClient(client, "acme", admin_key)
