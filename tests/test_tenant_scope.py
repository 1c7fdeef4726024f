"""tenant_scope: the one way a service resolves a tenant, and the app-owned cache behind it."""
from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from app.errors import http_error
from app.extensions import db
from app.models.tenant import valid_slug
from app.services import errors
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction
from tests.plugins.database import make_app


def test_scope_yields_the_tenant_and_its_issuer(ctx, tenant):
    with transaction():
        found = lookup_tenant(tenant)
        assert found.slug == tenant and found.kid and found.access_ttl == 900
        assert found.issuer == "http://baton.test/v1/tenants/acme"
        assert db.session().in_transaction()  # the scope is the service transaction
    assert not db.session().in_transaction()


def test_unknown_tenant_is_raised_by_the_scope(ctx, tenant):
    with pytest.raises(errors.UnknownTenant) as info:
        with transaction():
            lookup_tenant("nope")
            pass
    assert info.value.message == "unknown tenant 'nope'"


def test_a_malformed_slug_costs_no_query(ctx, tenant):
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        for slug in ("acme\n", "ACME", "-acme", "", "a" * 64):
            with pytest.raises(errors.UnknownTenant):
                with transaction():
                    lookup_tenant(slug)
                    pass
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert seen == []


@pytest.mark.parametrize("slug,ok", [("acme", True), ("a", True), ("0-9", True),
                                     ("acme\n", False), ("Acme", False), ("-a", False),
                                     ("a" * 63, True), ("a" * 64, False), ("", False)])
def test_slug_is_a_full_match(slug, ok):
    assert valid_slug(slug) is ok


def test_the_cache_belongs_to_the_app(app, database_url, tenant):
    """Two apps in one process share no tenant state (it was module-global)."""
    other = make_app(database_url)
    with app.app_context():
        with transaction():
            lookup_tenant(tenant)
            pass
        assert app.extensions["baton_tenants"].get(tenant) is not None
    with other.app_context():
        assert other.extensions["baton_tenants"].get(tenant) is None
        db.session.remove()


def test_cached_settings_expire_after_tenant_cache_s(database_url, tenant):
    app = make_app(database_url, TENANT_CACHE_S=1)
    with app.app_context():
        with transaction():
            before = lookup_tenant(tenant)
            assert before.reuse_interval == 10
        with db.session.begin():
            db.session.execute(sa.text("UPDATE tenants SET reuse_interval = 3"))
        with transaction():
            cached = lookup_tenant(tenant)
            assert cached.reuse_interval == 10  # within the window: the cached settings
        time.sleep(1.1)
        with transaction():
            fresh = lookup_tenant(tenant)
            assert fresh.reuse_interval == 3
        db.session.remove()


def _error_classes() -> list[type[errors.ServiceError]]:
    found, todo = [], [errors.ServiceError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


EXAMPLES = {
    errors.UnknownTenant: lambda: errors.UnknownTenant("nope"),
    errors.TenantExists: lambda: errors.TenantExists("acme"),
    errors.UserNotFound: lambda: errors.UserNotFound("acme", "bob"),
    errors.UsernameTaken: lambda: errors.UsernameTaken("bob", "acme"),
    errors.ScopeMissing: lambda: errors.ScopeMissing("admin"),
    errors.LoginThrottled: lambda: errors.LoginThrottled(7, 1, []),
    errors.Unavailable: lambda: errors.Unavailable(3),
    errors.DatabaseUnavailable: lambda: errors.DatabaseUnavailable(3),
    errors.KeyUnavailable: lambda: errors.KeyUnavailable(3),
    errors.StepUpRequired: lambda: errors.StepUpRequired(900),
    errors.InsufficientAuthorization: lambda: errors.InsufficientAuthorization("s", ["totp"]),
    errors.TooManyAttempts: lambda: errors.TooManyAttempts(4),
    errors.PasskeyRejected: lambda: errors.PasskeyRejected("unexpected origin"),
}
EXPECTED = {  # class -> (status, error code) of the SPEC
    errors.ServiceError: (400, "invalid_request"),
    errors.InvalidInput: (400, "invalid_request"),
    errors.PasswordPolicyViolation: (400, "invalid_request"),
    errors.TenantExists: (400, "invalid_request"),
    errors.UsernameTaken: (409, "conflict"),
    errors.Missing: (404, "not_found"),
    errors.UnknownTenant: (404, "not_found"),
    errors.UserNotFound: (404, "not_found"),
    errors.SessionNotFound: (404, "not_found"),
    errors.GrantRejected: (400, "invalid_grant"),
    errors.InvalidCredentials: (400, "invalid_grant"),
    errors.TokenRejected: (400, "invalid_grant"),
    errors.AccessDenied: (401, "invalid_token"),
    errors.ScopeMissing: (403, "insufficient_scope"),
    errors.LoginThrottled: (429, "slow_down"),
    errors.Unavailable: (503, "temporarily_unavailable"),
    errors.DatabaseUnavailable: (503, "temporarily_unavailable"),
    errors.KeyUnavailable: (503, "temporarily_unavailable"),
    errors.FactorNotFound: (404, "not_found"),
    errors.SecondFactorRequired: (400, "invalid_grant"),
    errors.GrantDisabled: (400, "unsupported_grant_type"),
    errors.StepUpRequired: (401, "insufficient_user_authentication"),
    errors.InsufficientAuthorization: (400, "insufficient_authorization"),
    errors.InvalidSession: (400, "invalid_session"),
    errors.TooManyAttempts: (429, "slow_down"),
    errors.PasskeyRejected: (400, "invalid_grant"),  # told why: the registering user asked
}


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda cls: cls.__name__)
def test_every_domain_error_has_its_http_error(cls):
    """The one translation table covers every domain error (a new one must be added here)."""
    exc = EXAMPLES.get(cls, cls)()
    http = http_error(exc)
    assert (http.status_code, http.error) == EXPECTED[cls]
    if cls in (errors.LoginThrottled, errors.TooManyAttempts) \
            or issubclass(cls, errors.Unavailable):
        assert http.headers["Retry-After"] == str(exc.retry_after)
    if issubclass(cls, errors.GrantRejected) and cls is not errors.SecondFactorRequired:
        assert http.description == "The provided grant is invalid, expired or revoked."  # no oracle
