"""A Python client generated from GET /openapi.json by openapi-python-client: every module
imports, no part of the document is dropped, and the client works against a live gunicorn
(form and JSON bodies, the admin key, introspection)."""
from __future__ import annotations

import hashlib
import importlib
import json
import pkgutil
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from app.extensions import db
from app.openapi import document
from app.services.accounts import users
from app.services.tenancy import admin_keys
from app.services.tenancy import tenants
from tests import secret_registry
from tests.helpers import utcnow

PACKAGE = "baton_client"


@pytest.fixture(scope="module")
def client_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated package, importable for this module's tests."""
    out = tmp_path_factory.mktemp("generated")
    spec, config = out / "openapi.json", out / "config.yaml"
    spec.write_text(json.dumps(document()))
    config.write_text("post_hooks: []\n")  # no formatter run: the code imports as generated
    generated = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
         "--config", str(config), "--output-path", str(out / "client")],
        capture_output=True, text=True, timeout=300)
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    # A schema the generator cannot read is dropped with a warning, and the client with it.
    assert "Warning" not in output and "Unable to" not in output, output
    sys.path.insert(0, str(out / "client"))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out / "client"))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.mark.slow
def test_every_generated_module_imports(client_package: ModuleType) -> None:
    names = [info.name for info in pkgutil.walk_packages(client_package.__path__, PACKAGE + ".")]
    for name in names:
        importlib.import_module(name)
    operations = {op["operationId"] for item in document()["paths"].values()
                  for method, op in item.items() if method != "parameters"}
    modules = [name for name in names if name.startswith(PACKAGE + ".api.") and
               name.count(".") == 3]  # baton_client.api.<tag>.<operation>
    assert len(modules) == len(operations)  # one module per operation: none left out
    for model in ("introspection", "token_response", "password_grant_form", "admin_user"):
        assert f"{PACKAGE}.models.{model}" in names


@pytest.fixture
def client_tenant(app, request) -> tuple[str, str]:
    """A tenant of this test's own (workers cache tenants), a user and an admin key."""
    slug = "oc-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings(slug, "Client"), utcnow())
        users.create_user(slug, "carol", "carol's password", utcnow())
        _, key = admin_keys.create_key(slug, "client", "admin", utcnow())
        db.session.remove()
    secret_registry.remember(key)
    return slug, key


@pytest.mark.slow
def test_generated_client_works(client_package: ModuleType, live_server: str,
                                client_tenant: tuple[str, str]) -> None:
    """Login as a form, refresh as JSON, introspect with the admin key, list sessions."""
    from baton_client import AuthenticatedClient
    from baton_client import Client
    from baton_client.api.admin import admin_user_sessions
    from baton_client.api.tokens import introspect
    from baton_client.api.tokens import token
    from baton_client.models import Error
    from baton_client.models import IntrospectRequestForm
    from baton_client.models import PasswordGrantForm
    from baton_client.models import RefreshTokenGrant
    from baton_client.models import TokenResponse

    tenant, key = client_tenant
    public = Client(base_url=live_server)
    issued = token.sync(tenant, client=public, body=PasswordGrantForm(
        grant_type="password", username="Carol", password="carol's password"))
    assert isinstance(issued, TokenResponse), issued
    secret_registry.remember(issued.access_token, issued.refresh_token)
    refreshed = token.sync(tenant, client=public, body=RefreshTokenGrant(
        grant_type="refresh_token", refresh_token=issued.refresh_token))
    assert isinstance(refreshed, TokenResponse) and refreshed.session_id == issued.session_id
    secret_registry.remember(refreshed.access_token, refreshed.refresh_token)
    replayed = token.sync(tenant, client=public, body=RefreshTokenGrant(
        grant_type="refresh_token", refresh_token="not a token"))
    assert isinstance(replayed, Error) and replayed.error == "invalid_grant"

    admin = AuthenticatedClient(base_url=live_server, token=key)
    active = introspect.sync(tenant, client=admin,
                             body=IntrospectRequestForm(token=refreshed.access_token))
    assert active.active is True and active.sid == issued.session_id
    assert active.aud == "baton"
    listed = admin_user_sessions.sync(tenant, active.sub, client=admin)
    assert [session.id for session in listed.sessions] == [issued.session_id]
