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
                                 "--no-password-grant", "--webauthn-origin",
                                 "http://localhost:5173"])
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
])
def test_bad_sign_in_options_are_one_line(runner, args, fragment):
    assert_one_error_line(runner.invoke(args=["tenants", "create", "acme", *args]), fragment)


def test_update_refuses_an_origin_list_and_none(runner, tenant):
    assert_one_error_line(runner.invoke(args=[
        "tenants", "update", tenant, "--webauthn-origin", "https://a.example",
        "--no-webauthn-origins"]), "--no-webauthn-origins")


@pytest.mark.parametrize("args, said", [
    # An address as RP ID (BATON_BASE_URL's host under `make run`): no browser takes it.
    (["--webauthn-rp-id", "127.0.0.1", "--webauthn-origin", "http://127.0.0.1:8001"],
     ["'127.0.0.1', is an address", "'http://127.0.0.1:8001' is not https"]),
    # No RP ID of its own: the origins are checked against BATON_BASE_URL's host (baton.test).
    (["--webauthn-origin", "https://app.example.com"],
     ["not on the rp id in effect, 'baton.test' (the host of BATON_BASE_URL)"]),
    # Browsers offer WebAuthn over http on localhost only (a secure context).
    (["--webauthn-rp-id", "example.com", "--webauthn-origin", "http://app.example.com"],
     ["'http://app.example.com' is not https"]),
    (["--webauthn-rp-id", "localhost", "--webauthn-origin", "http://localhost:8001"], []),
])
def test_settings_no_browser_takes_are_kept_and_said(app, runner, args, said):
    """Kept: a client with its own WebAuthn stack can use them (SPEC §13.5's default RP ID is
    an address under `make run`); said, one `Warning:` line each, on stderr."""
    result = runner.invoke(args=["tenants", "create", "acme", *args])
    assert result.exit_code == 0, result.output
    warnings = result.stderr.splitlines()
    assert len(warnings) == len(said) and all(w.startswith("Warning: ") for w in warnings)
    for fragment, warning in zip(said, warnings):
        assert fragment in warning, warning
    assert settings(app).webauthn_origins == tuple(args[args.index("--webauthn-origin") + 1:
                                                        args.index("--webauthn-origin") + 2])
    shown = runner.invoke(args=["tenants", "show", "acme"])
    assert shown.stderr.splitlines() == warnings


def test_an_rp_id_given_up_is_warned_about(app, runner, tenant):
    ok = runner.invoke(args=["tenants", "update", tenant, "--webauthn-rp-id", "example.com",
                             "--webauthn-origin", "https://app.example.com"])
    assert ok.exit_code == 0 and not ok.stderr, ok.output
    # Back to BATON_BASE_URL's host (baton.test), which the origin is not on.
    back = runner.invoke(args=["tenants", "update", tenant, "--webauthn-rp-id", ""])
    assert back.exit_code == 0 and "not on the rp id in effect" in back.stderr
    assert settings(app).webauthn_rp_id is None


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
