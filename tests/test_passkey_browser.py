"""SPEC §13.5 in a real browser: examples/passkeys (static HTML and a script, no build step,
a strict Content-Security-Policy) served on http://localhost, Baton's gunicorn on another
port, headless Chromium with Chrome's virtual authenticator (CTAP2, internal, resident
keys, user verification). The page signs in with the password, registers a passkey, signs
out, then signs in with the password and the passkey, with the passkey alone (a username),
and with a discoverable passkey (none); each access token's `amr` is read off the page
and checked against the session Baton recorded."""
from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from app.extensions import db
from tests import factories
from tests.helpers import PASSWORD
from tests.helpers import PROJECT_ROOT
from tests.plugins.browser import static_site

PAGE = PROJECT_ROOT / "examples" / "passkeys"
TIMEOUT_S = 30

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class Page:
    """The example page in the browser: click, then wait for its status line."""

    def __init__(self, driver) -> None:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.by = driver, By
        self.wait = WebDriverWait(driver, TIMEOUT_S)

    def element(self, element_id: str):
        return self.driver.find_element(self.by.ID, element_id)

    def type(self, element_id: str, text: str) -> None:
        field = self.element(element_id)
        field.clear()
        if text:
            field.send_keys(text)

    def status(self) -> str:
        return self.element("status").text

    def click(self, element_id: str, expect: str) -> str:
        """Click a button; the status line once it starts with `expect` (an error fails)."""
        before = self.status()
        self.element(element_id).click()
        self.wait.until(lambda _: self.status() != before and (
            self.status().startswith((expect, "Error")) and "…" not in self.status()))
        status = self.status()
        assert status.startswith(expect), status
        return status

    def amr(self) -> list[str]:
        return json.loads(self.element("amr").text)


def _sessions_amr(app) -> list[list[str]]:
    with app.app_context():
        rows = db.session.execute(sa.text(
            "SELECT s.amr FROM sessions s JOIN users u ON u.id = s.user_id "
            "JOIN tenants t ON t.id = u.tenant_id WHERE t.slug = 'browser' "
            "ORDER BY s.created_at")).scalars().all()
        db.session.remove()
    return [list(amr) for amr in rows]


def test_the_example_page_signs_in_with_passkeys_in_chromium(app, live_server, browser):
    from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions

    lines = []
    with static_site(PAGE) as origin:
        with app.app_context():
            factories.make_tenant("browser", "Browser demo", cors_origins=(origin,),
                                  webauthn_rp_id="localhost", webauthn_origins=(origin,))
            factories.make_user("browser", "alice", PASSWORD)
        browser.get(f"{origin}/index.html?baton={live_server}&tenant=browser")
        page = Page(browser)
        page.wait.until(lambda _: page.status() in ("Ready.",) or "Error" in page.status())
        assert page.status() == "Ready.", page.status()
        browser.add_virtual_authenticator(VirtualAuthenticatorOptions(
            protocol="ctap2", transport="internal", has_resident_key=True,
            has_user_verification=True, is_user_verified=True))

        def step(name: str, button: str, expect: str) -> None:
            status = page.click(button, expect)
            amr = page.amr() if expect.startswith("Signed in") else None
            lines.append(f"[browser] {name}: {status}" + (f" amr={amr}" if amr else ""))

        page.type("username", "alice")
        page.type("password", PASSWORD)
        step("password", "signin-password", "Signed in")
        assert page.amr() == ["pwd"]
        step("register a passkey", "add-passkey", "Passkey added")
        codes = page.element("recovery-codes").find_elements(page.by.TAG_NAME, "li")
        assert len(codes) == 10
        lines.append(f"[browser] recovery codes shown: {len(codes)}")
        step("sign out", "signout", "Signed out")

        page.type("username", "alice")
        page.type("password", PASSWORD)
        step("password + passkey", "signin-password", "Signed in")
        assert page.amr() == ["pwd", "pop", "mfa"]
        step("sign out", "signout", "Signed out")

        page.type("password", "")
        step("passkey alone, username alice", "signin-passkey", "Signed in")
        assert page.amr() == ["pop", "mfa"]
        step("sign out", "signout", "Signed out")

        page.type("username", "")
        step("discoverable passkey, no username", "signin-passkey", "Signed in")
        assert page.amr() == ["pop", "mfa"]

        # Network answers are the protocol's (the 400 insufficient_authorization, a
        # favicon's 404); anything else severe, or any policy violation, is a fault.
        console = [entry["message"] for entry in browser.get_log("browser")
                   if (entry["level"] == "SEVERE" or "Content Security Policy" in entry["message"])
                   and "Failed to load resource" not in entry["message"]]
        assert console == [], console
    recorded = _sessions_amr(app)
    assert recorded == [["pwd"], ["pwd", "pop", "mfa"], ["pop", "mfa"], ["pop", "mfa"]], recorded
    lines.append(f"[browser] sessions Baton recorded (amr): {recorded}")
    lines.append("[browser] console: no errors, no Content-Security-Policy violation")
    print("\n" + "\n".join(lines))
