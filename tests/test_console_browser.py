"""The admin console end to end (SPEC §14): a real headless Chromium against a real gunicorn.

An operator signs in, finds a user, revokes one of the user's sessions and sees that
session's refresh token stop working over HTTP, finds the `session.revoked` event, and signs
out; every page is loaded with the Content-Security-Policy enforced and must leave no error
in the browser's console. `BATON_CONSOLE_SCREENSHOT=docs/console.png` makes the first test
save the README's screenshot (see README "Console").
"""
from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from app.extensions import db
from app.services.tenancy import admin_keys
from tests import secret_registry
from tests.factories import make_admin_key
from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import utcnow
from tests.plugins.browser import click_and_wait
from tests.plugins.browser import console_errors
from tests.plugins.browser import new_page
from tests.signin_helpers import SignIn

SCREENSHOT = "BATON_CONSOLE_SCREENSHOT"


def slug_for(request: pytest.FixtureRequest) -> str:
    # A slug of its own per test: gunicorn workers cache tenant settings for a few seconds,
    # and tables are emptied between tests.
    return "console-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:10]


@pytest.fixture
def operator(app: Flask, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A tenant with alice (a TOTP factor, three sessions: two apps and curl), bob, carol, and
    an admin key; the sessions were started in-process on the database gunicorn serves."""
    slug = slug_for(request)
    with app.app_context():
        make_tenant(slug, "Acme Corp")
        for name in ("alice", "bob", "carol"):
            make_user(slug, name)
        key = make_admin_key(slug, name="console")
        db.session.remove()
    client: FlaskClient = app.test_client()
    flow = SignIn(client, slug)
    client.environ_base["HTTP_USER_AGENT"] = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
    web = flow.sign_in(client_id="web-app")
    _, secret, codes, _ = flow.enrol_totp(web["access_token"], name="phone")
    secret_registry.remember(*codes)
    client.environ_base["HTTP_USER_AGENT"] = "AcmeApp/2.3 (iPhone; iOS 18.1)"
    mobile = flow.sign_in(otp_secret=secret, client_id="ios-app")
    client.environ_base["HTTP_USER_AGENT"] = "AcmeDesktop/1.9 (Windows NT 10.0)"
    flow.sign_in(recovery_code=codes[0], client_id="desktop-app")
    with app.app_context():
        db.session.remove()
    return {"tenant": slug, "key": key, "web": web, "mobile": mobile}


def sign_in(browser: Any, base: str, tenant: str, key: str) -> None:
    browser.get(f"{base}/console/")
    assert browser.current_url == f"{base}/console/sign-in"  # no session yet
    browser.find_element(By.ID, "tenant").send_keys(tenant)
    browser.find_element(By.ID, "admin_key").send_keys(key)
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    assert browser.current_url == f"{base}/console/users", browser.page_source[:2000]


def refresh_status(base: str, tenant: str, token: str) -> int:
    return requests.post(f"{base}/v1/tenants/{tenant}/token", data={
        "grant_type": "refresh_token", "refresh_token": token}, timeout=30).status_code


def save_screenshot(browser: Any, path: str) -> None:
    """The whole page (beyond the window's height), as Chromium renders it."""
    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
    with open(path, "wb") as out:
        out.write(base64.b64decode(shot["data"]))


def test_operator_revokes_a_session_and_sees_the_event(live_server, browser, operator):
    base, tenant = live_server, operator["tenant"]
    sign_in(browser, base, tenant, operator["key"])
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session_cookie = cookies["__Host-baton-console"]
    secret_registry.remember(session_cookie["value"])
    assert session_cookie["httpOnly"] and session_cookie["secure"]
    assert session_cookie["sameSite"] == "Strict"
    assert operator["key"] not in str(browser.get_cookies())

    # Find the user (normalised as at login) and open her page.
    search = browser.find_element(By.ID, "username")
    search.send_keys("ALICE")
    click_and_wait(browser, browser.find_element(By.XPATH, "//button[text()='Find']"))
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "alice"))
    assert browser.find_element(By.TAG_NAME, "h1").text == "alice"
    page = browser.page_source
    assert operator["web"]["session_id"] in page and "pwd, otp, mfa" in page

    # Revoke the web app's session: a confirmation page, whose form posts.
    web = operator["web"]
    click_and_wait(browser, browser.find_element(
        By.CSS_SELECTOR, f'a[aria-label="Revoke session {web["session_id"]}"]'))
    assert browser.find_element(By.TAG_NAME, "h1").text == "Revoke session: alice"
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.confirm button"))
    assert browser.find_element(By.CSS_SELECTOR, "p.notice").text == "The session was revoked."
    assert web["session_id"] not in browser.page_source
    assert refresh_status(base, tenant, web["refresh_token"]) == 400
    assert refresh_status(base, tenant, operator["mobile"]["refresh_token"]) == 200
    if os.environ.get(SCREENSHOT):
        save_screenshot(browser, os.environ[SCREENSHOT])

    # The event, by type (the feed holds back what is younger than any running transaction
    # on the server, which tests may share: reload until it shows, as a person would).
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Security events"))
    Select(browser.find_element(By.ID, "type")).select_by_visible_text("session.revoked")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "main form button"))
    deadline = time.monotonic() + 30
    while web["session_id"] not in browser.page_source and time.monotonic() < deadline:
        time.sleep(0.2)
        browser.refresh()
    rows = browser.find_elements(By.CSS_SELECTOR, "main tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["session.revoked"]
    assert web["session_id"] in rows[0].text and "admin_key" in rows[0].text

    # Sign out: back at the sign-in page, and the console is closed to this browser.
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.sign-out button"))
    assert browser.current_url == f"{base}/console/sign-in?done=signed_out"
    assert "You are signed out." in browser.page_source
    browser.get(f"{base}/console/users")
    assert browser.current_url == f"{base}/console/sign-in"
    assert console_errors(browser) == []


def visit(browser: Any, url: str, errors: dict[str, list], status: int = 200) -> None:
    """Load a page; its console errors are kept, except the one Chromium reports for an
    error page's own status (the document answered 404 on purpose, say)."""
    browser.get(url)
    expected = f"{url} - Failed to load resource: the server responded with a status of " \
               f"{status}"
    errors[url] = [entry for entry in console_errors(browser)
                   if not (status != 200 and entry["message"].startswith(expected))]


def test_every_page_loads_under_the_csp_without_a_console_error(live_server, browser,
                                                                operator):
    base, tenant = live_server, operator["tenant"]
    errors: dict[str, list] = {}
    visit(browser, f"{base}/console/sign-in", errors)
    sign_in(browser, base, tenant, operator["key"])
    errors["sign-in"] = console_errors(browser)
    session = operator["mobile"]["session_id"]
    for path, status in (
            ("/users", 200), ("/users?username=bob", 200), ("/users?username=nobody", 200),
            ("/users/1", 200), ("/users/1/disable", 200), ("/users/1/logout", 200),
            ("/users/1/remove-factors", 200), (f"/users/1/sessions/{session}/revoke", 200),
            ("/events", 200), ("/events?type=session.started", 200), ("/settings", 200),
            ("/users/999", 404), ("/nope", 404), ("/events?after=x", 400),
            ("/users?username=%20x", 400)):
        visit(browser, f"{base}/console{path}", errors, status)
        assert browser.find_element(By.TAG_NAME, "h1").text  # a page, not a blank
    browser.get(f"{base}/console/users/1")
    click_and_wait(browser, browser.find_element(
        By.XPATH, "//button[text()='Create a password reset link']"))
    token = browser.find_element(By.ID, "reset-token").get_attribute("value")
    secret_registry.remember(token)
    errors["reset link"] = console_errors(browser)
    assert {url: found for url, found in errors.items() if found} == {}
    # The stylesheet applied (style-src 'self'): the header's background is the CSS's.
    header = browser.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("background-color") == "rgba(29, 53, 87, 1)"
    # And the check sees a violation: an inline style is refused, and reported.
    browser.execute_script(
        "const s = document.createElement('style'); s.textContent = 'body{color:red}';"
        "document.head.appendChild(s);")
    reported = console_errors(browser)
    assert any("Content Security Policy" in entry["message"] for entry in reported), reported


def test_a_revoked_key_closes_an_open_console(app, live_server, browser, operator):
    base, tenant = live_server, operator["tenant"]
    sign_in(browser, base, tenant, operator["key"])
    with app.app_context():
        [key] = admin_keys.list_keys(tenant)
        admin_keys.revoke_key(tenant, key.id, utcnow())
        db.session.remove()
    click_and_wait(browser, browser.find_element(By.LINK_TEXT, "Security events"))
    assert browser.current_url == f"{base}/console/sign-in?done=ended"
    assert "Your console session has ended" in browser.page_source
    assert requests.get(f"{base}/console/users", timeout=30,
                        allow_redirects=False).status_code == 303
    assert console_errors(browser) == []


def test_the_console_works_from_the_keyboard(live_server, browser, operator):
    """Sign in and reach a user with Tab, typing and Enter only."""
    base = live_server
    browser.get(f"{base}/console/sign-in")

    def tab_to(element_id: str) -> Any:
        for _ in range(10):
            browser.switch_to.active_element.send_keys(Keys.TAB)
            active = browser.switch_to.active_element
            if active.get_attribute("id") == element_id:
                return active
        raise AssertionError(f"Tab never reached #{element_id}")

    tab_to("tenant").send_keys(operator["tenant"])
    tab_to("admin_key").send_keys(operator["key"])
    with new_page(browser):
        browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert browser.current_url == f"{base}/console/users"
    with new_page(browser):
        tab_to("username").send_keys("bob" + Keys.ENTER)
    assert browser.current_url == f"{base}/console/users?username=bob"
    for _ in range(20):  # on to the user's link, then Enter
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element.text == "bob":
            break
    with new_page(browser):
        browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert browser.find_element(By.TAG_NAME, "h1").text == "bob"
    assert console_errors(browser) == []
