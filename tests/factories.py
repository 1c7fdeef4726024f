"""Factories: a tenant, a user, a session or an admin key, made through the real services with
sensible defaults (the `acme` tenant, user `alice`). Call them inside an app context."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import Tenant
from app.services.accounts import users
from app.services.accounts.users import UserView
from app.services.tenancy import admin_keys
from app.services.tenancy import tenants
from app.services.tokens.issuing import IssuedTokens
from tests import secret_registry
from tests.helpers import PASSWORD
from tests.helpers import login
from tests.helpers import utcnow


def make_tenant(slug: str = "acme", name: str | None = None, *, now: datetime | None = None,
                **settings: Any) -> int:
    """A tenant with default settings unless given; returns its id."""
    tenant_id = tenants.create_tenant(
        tenants.TenantSettings(slug, name or slug.capitalize(), **settings), now or utcnow())
    db.session.remove()
    return tenant_id


def make_user(tenant: str = "acme", username: str = "alice", password: str = PASSWORD, *,
              now: datetime | None = None) -> UserView:
    """A user of an existing tenant."""
    user = users.create_user(tenant, username, password, now or utcnow())
    db.session.remove()
    return user


def make_session(tenant: str = "acme", username: str = "alice", password: str = PASSWORD, *,
                 now: datetime | None = None) -> IssuedTokens:
    """A fresh session of an existing user (a password grant); its first token pair."""
    issued = login(tenant, username, password, now=now)
    db.session.remove()
    secret_registry.remember(issued.refresh_token, issued.access_token)
    return issued


def make_admin_key(tenant: str = "acme", scope: str = "admin", name: str = "tests", *,
                   now: datetime | None = None) -> str:
    """A fresh admin key of the tenant (its secret, registered for the leak check)."""
    _, key = admin_keys.create_key(tenant, name, scope, now or utcnow())
    db.session.remove()
    secret_registry.remember(key)
    return key


def tenant_id(slug: str = "acme") -> int:
    """The id of a tenant by slug (ids restart with every test: never assume 1)."""
    value = db.session.execute(sa.select(Tenant.id).where(Tenant.slug == slug)).scalar_one()
    db.session.rollback()
    return int(value)
