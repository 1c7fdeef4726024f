"""Development only: the demo tenant and user that `make run` offers (SPEC §3)."""
from __future__ import annotations

import json
import secrets
from datetime import datetime
from pathlib import Path

from app.services.accounts import users
from app.services.tenancy import tenants

DEMO_TENANT = "demo"
DEMO_USER = "demo"
CREDENTIALS_FILE = "demo-credentials.json"


def ensure_demo(instance_path: str, now: datetime, base_url: str) -> tuple[str, str, Path]:
    """Create what is missing; returns (username, password, file the password is kept in).

    The file also names the server (`base_url`), so the curl examples and the README's
    Python client follow `make run BIND=...` to another port."""
    path = Path(instance_path) / CREDENTIALS_FILE
    saved = json.loads(path.read_text()) if path.exists() else {}
    password = saved.get("password") or secrets.token_urlsafe(12)
    if not tenants.tenant_exists(DEMO_TENANT):
        tenants.create_tenant(tenants.TenantSettings(DEMO_TENANT, "Demo"), now)
    if not users.user_exists(DEMO_TENANT, DEMO_USER):
        users.create_user(DEMO_TENANT, DEMO_USER, password, now)
    elif not saved:
        # The password was lost with instance/: set a known one (and end old sessions).
        users.set_password(DEMO_TENANT, DEMO_USER, password, now)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"tenant": DEMO_TENANT, "username": DEMO_USER,
                                "password": password, "base_url": base_url}))
    path.chmod(0o600)
    return DEMO_USER, password, path

