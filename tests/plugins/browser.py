"""A real headless Chromium for end-to-end tests (`browser`), driven by selenium through the
machine's chromedriver (Debian's `chromium` and `chromium-driver`; .ci/run installs them).

Every test that uses `browser` (or `new_browser`) is marked `browser` and `slow`: CI runs
them once, in its server-database step, and `make test-quick` leaves them out. A missing
Chromium skips them on a developer's machine and fails them under CI=true
(tests/topology.py's require_binary).

Each browser gets a fresh profile (`--user-data-dir`) and the flags below: headless, no
sandbox (CI runs as root), and none of Chromium's own network traffic (this machine has no
internet; without them it floods the log with refused connections). The browser's console
log is captured (goog:loggingPrefs), so a test can fail on any error a page causes: a
Content-Security-Policy violation, a resource that failed to load, a script error.

Reuse: `new_browser(*arguments)` starts another one with extra Chromium arguments, and the
driver is selenium's Chrome WebDriver, so Chrome's virtual authenticator
(`driver.add_virtual_authenticator`, WebAuthn) and CDP (`driver.execute_cdp_cmd`) are there;
`static_site(directory)` serves a folder of pages on http://localhost (a secure context, as
WebAuthn requires).
"""
from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("BATON_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BATON_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--window-size=1280,900")
FIXTURES = ("browser", "new_browser")


def start_chromium(profile: Path, *arguments: str) -> Any:
    """A headless Chromium under chromedriver with a fresh profile; its console log kept."""
    from tests.topology import require_binary

    require_binary(CHROMIUM, "chromium")
    require_binary(CHROMEDRIVER, "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", *arguments):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def click_and_wait(driver: Any, element: Any, timeout_s: float = 15) -> None:
    """Click something that loads a new page (a link, a form's button) and wait until the
    new page has loaded: selenium's click returns as soon as the event is dispatched."""
    with new_page(driver, timeout_s):
        element.click()


@contextmanager
def new_page(driver: Any, timeout_s: float = 15) -> Iterator[None]:
    """Wait, after the block, until another document has replaced this one and has loaded
    (for a key press that submits a form, say)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    old = driver.find_element("tag name", "html").id

    def loaded(d: Any) -> bool:
        try:
            return bool(d.find_element("tag name", "html").id != old
                        and d.execute_script("return document.readyState") == "complete")
        except WebDriverException:
            # Between two documents chromedriver may answer "stale element" or "node does
            # not belong to the document": not loaded yet.
            return False

    yield
    WebDriverWait(driver, timeout_s).until(loaded)


def console_errors(driver: Any) -> list[dict]:
    """The errors the browser's console reported since the last call (the log is drained)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


@pytest.fixture
def new_browser() -> Iterator[Callable[..., Any]]:
    """Start headless Chromiums (`new_browser(*extra_arguments)`); all quit at the end."""
    drivers: list[Any] = []
    profiles: list[tempfile.TemporaryDirectory] = []

    def start(*arguments: str) -> Any:
        profiles.append(tempfile.TemporaryDirectory(prefix="baton-chromium-"))
        drivers.append(start_chromium(Path(profiles[-1].name), *arguments))
        return drivers[-1]

    try:
        yield start
    finally:
        for driver in drivers:
            driver.quit()
        for profile in profiles:
            profile.cleanup()


@pytest.fixture
def browser(new_browser: Callable[..., Any]) -> Any:
    """A headless Chromium with a fresh profile (selenium's Chrome WebDriver)."""
    return new_browser()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the base class names it so
        pass


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1; yields its origin as http://localhost:PORT."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test with a browser is `browser` and `slow` (once per CI run)."""
    for item in items:
        if set(FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)
