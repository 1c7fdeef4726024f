"""The tenant options of SPEC §13.4 on the CLI, and `keys reencrypt` for TOTP secrets."""
from __future__ import annotations

import pytest

from app.services.tenancy import tenants
from tests.test_cli import assert_one_error_line


def settings(app, slug: str = "acme") -> tenants.TenantSettings:
    with app.app_context():
        return next(t for t in tenants.list_tenants() if t.slug == slug)


def test_create_with_the_sign_in_policy(app, runner):
    result = runner.invoke(args=[
        "tenants", "create", "acme", "--mfa", "required", "--no-password-grant",
        "--step-up-max-age", "300", "--webauthn-rp-id", "Example.COM",
        "--webauthn-origin", "https://app.example.com", "--webauthn-origin",
        "https://example.com:8443"])
    assert result.exit_code == 0, result.output
    created = settings(app)
    assert (created.mfa, created.password_grant, created.step_up_max_age) == \
        ("required", False, 300)
    assert created.webauthn_rp_id == "example.com"
    assert created.webauthn_origins == ("https://app.example.com", "https://example.com:8443")
    listing = runner.invoke(args=["tenants", "list"]).output
    row = next(line for line in listing.splitlines() if line.startswith("acme"))
    assert "required" in row and " off " in row


def test_defaults_and_update(app, runner, tenant):
    created = settings(app)
    assert (created.mfa, created.password_grant, created.step_up_max_age,
            created.webauthn_rp_id, created.webauthn_origins) == ("optional", True, 900, None, ())
    result = runner.invoke(args=["tenants", "update", tenant, "--mfa", "required",
                                 "--no-password-grant", "--webauthn-rp-id", "localhost",
                                 "--webauthn-origin", "http://localhost:5173"])
    assert result.exit_code == 0, result.output
    assert "mfa" in result.output and "password_grant" in result.output
    updated = settings(app)
    assert (updated.mfa, updated.password_grant, updated.webauthn_origins) == (
        "required", False, ("http://localhost:5173",))
    assert updated.step_up_max_age == 900  # untouched
    runner.invoke(args=["tenants", "update", tenant, "--password-grant",
                        "--no-webauthn-origins", "--webauthn-rp-id", "example.org"])
    assert (settings(app).password_grant, settings(app).webauthn_origins) == (True, ())
    runner.invoke(args=["tenants", "update", tenant, "--webauthn-rp-id", ""])
    assert settings(app).webauthn_rp_id is None


@pytest.mark.parametrize("args, fragment", [
    (["--mfa", "always"], "--mfa"),
    (["--step-up-max-age", "0"], "--step-up-max-age"),
    (["--webauthn-rp-id", "https://example.com"], "rp id"),
    (["--webauthn-rp-id", "example.com", "--webauthn-origin", "https://evil.test"],
     "not on the rp id"),
    (["--webauthn-origin", "example.com"], "webauthn origin"),
    (["--webauthn-rp-id", "127.0.0.1"], "not an address"),
    # No RP ID: the origins must be on BATON_BASE_URL's host (baton.test in the tests).
    (["--webauthn-origin", "https://app.example.com"], "not on the rp id"),
    # Browsers allow WebAuthn over http on localhost only (a secure context).
    (["--webauthn-rp-id", "example.com", "--webauthn-origin", "http://app.example.com"],
     "must be https"),
])
def test_bad_sign_in_options_are_one_line(runner, args, fragment):
    assert_one_error_line(runner.invoke(args=["tenants", "create", "acme", *args]), fragment)


def test_update_refuses_an_origin_list_and_none(runner, tenant):
    assert_one_error_line(runner.invoke(args=[
        "tenants", "update", tenant, "--webauthn-origin", "https://a.example",
        "--no-webauthn-origins"]), "--no-webauthn-origins")


def test_origins_are_checked_against_the_rp_id_in_effect(app, runner, tenant, monkeypatch):
    ok = runner.invoke(args=["tenants", "update", tenant, "--webauthn-rp-id", "example.com",
                             "--webauthn-origin", "https://app.example.com"])
    assert ok.exit_code == 0, ok.output
    # Back to BASE_URL's host (baton.test), which the origin is not on: refused, nothing lost.
    assert_one_error_line(runner.invoke(args=[
        "tenants", "update", tenant, "--webauthn-rp-id", ""]), "not on the rp id")
    assert settings(app).webauthn_rp_id == "example.com"
    # `make run`'s BASE_URL host is an address, never an RP ID: origins need --webauthn-rp-id.
    monkeypatch.setitem(app.config, "BASE_URL", "http://127.0.0.1:8000")
    assert_one_error_line(runner.invoke(args=[
        "tenants", "update", tenant, "--webauthn-rp-id", "",
        "--webauthn-origin", "http://127.0.0.1:8001"]), "--webauthn-rp-id")
    assert settings(app).webauthn_origins == ("https://app.example.com",)


def test_show_prints_every_setting(runner, tenant):
    shown = runner.invoke(args=["tenants", "show", tenant])
    assert shown.exit_code == 0, shown.output
    assert "webauthn_rp_id       - (the host of BATON_BASE_URL: baton.test)" in shown.output
    assert "webauthn_origins     -" in shown.output and "password_grant       on" in shown.output
    runner.invoke(args=["tenants", "update", tenant, "--webauthn-rp-id", "example.com",
                        "--webauthn-origin", "https://app.example.com", "--webauthn-origin",
                        "https://example.com", "--cors-origin", "https://app.example.com"])
    lines = runner.invoke(args=["tenants", "show", tenant]).output.splitlines()
    assert "webauthn_rp_id       example.com" in lines
    assert "webauthn_origins     https://app.example.com, https://example.com" in lines
    assert "cors_origins         https://app.example.com" in lines
    assert_one_error_line(runner.invoke(args=["tenants", "show", "nope"]), "nope")
