"""The per-worker tenant cache, in one process: a change written behind its back is served
stale for at most TENANT_CACHE_S; a change made through the service is seen at once."""
from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services.tenancy import tenants
from tests.factories import make_tenant
from tests.plugins.database import make_app


def _set_origins_behind_the_cache(origins: list[str]) -> None:
    with db.session.begin():
        db.session.execute(sa.text("UPDATE tenants SET cors_origins = :o WHERE slug = 'acme'"),
                           {"o": origins})


@pytest.mark.slow
def test_stale_for_at_most_the_window_then_fresh(app, database_url):
    cached = make_app(database_url, TENANT_CACHE_S=1)
    with cached.app_context():
        make_tenant("acme", cors_origins=("https://old.example",))
        assert tenants.cors_origins("acme") == ("https://old.example",)
        _set_origins_behind_the_cache(["https://new.example"])
        assert tenants.cors_origins("acme") == ("https://old.example",)  # within the window
        time.sleep(1.1)
        assert tenants.cors_origins("acme") == ("https://new.example",)
        db.session.remove()


def test_update_through_the_service_is_seen_at_once(app, database_url):
    cached = make_app(database_url, TENANT_CACHE_S=300)
    with cached.app_context():
        make_tenant("acme")
        assert tenants.cors_origins("acme") == ()
        tenants.update_tenant("acme", cors_origins=("https://app.example",))
        assert tenants.cors_origins("acme") == ("https://app.example",)
        db.session.remove()


def test_unknown_tenant_is_not_cached(app, database_url):
    cached = make_app(database_url, TENANT_CACHE_S=300)
    with cached.app_context():
        assert tenants.cors_origins("acme") == ()
        make_tenant("acme", cors_origins=("https://app.example",))
        assert tenants.cors_origins("acme") == ("https://app.example",)
        db.session.remove()
