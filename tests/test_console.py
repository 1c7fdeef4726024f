"""The admin console's pages and protections (SPEC §14) through the Flask test client: sign-in
and its refusals, every page, every action and its events, the form token, expiry, a revoked
key, headers and cookies, and error pages for bad input (never a 500). The browser tests are
in test_console_browser.py."""
from __future__ import annotations

import hashlib
import re
import time
from datetime import timedelta
from typing import Any
from typing import Callable

import pytest
import sqlalchemy as sa

from app.console import auth
from app.extensions import db
from app.models import ConsoleSession
from app.services.accounts import users as users_service
from app.services.errors import DatabaseUnavailable
from app.services.signin import console_sessions
from app.services.tenancy import admin_keys
from app.services.tenancy import tenants
from tests import secret_registry
from tests.console_helpers import SESSION_COOKIE
from tests.console_helpers import SIGN_IN_COOKIE
from tests.console_helpers import Console
from tests.console_helpers import form_token
from tests.console_helpers import set_cookie_header
from tests.factories import make_admin_key
from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import PASSWORD
from tests.helpers import events_of
from tests.helpers import utcnow
from tests.plugins.database import make_app
from tests.signin_helpers import SignIn

PAGES = ["/users", "/users?username=alice", "/users/1", "/users/1/disable", "/users/1/logout",
         "/users/1/remove-factors", "/events", "/events?type=user.created", "/settings"]


@pytest.fixture
def console(client, user, admin_key) -> Console:
    """A console signed in with an admin key of acme (whose user alice exists)."""
    signed = Console(client)
    signed.signed_in("acme", admin_key)
    return signed


def text(response) -> str:
    return response.get_data(as_text=True)


def is_page(response, status: int) -> bool:
    return response.status_code == status and response.mimetype == "text/html"


def eventually(fetch: Callable[[], Any], ok: Callable[[Any], bool], timeout_s: float = 30):
    """`fetch()` until `ok` holds (the events feed holds back what is younger than the
    oldest transaction running on the server, which tests may share)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = fetch()
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)



def refresh(client, token: str) -> int:
    return client.post("/v1/tenants/acme/token", data={
        "grant_type": "refresh_token", "refresh_token": token}).status_code


# -- sign-in ------------------------------------------------------------------------------

def test_sign_in_page(client, tenant):
    page = client.get("/console/sign-in")
    assert is_page(page, 200)
    body = text(page)
    for field in ("tenant", "admin_key"):
        assert f'<label for="{field}">' in body and f'id="{field}" name="{field}"' in body
    assert 'type="password"' in body and 'autocomplete="off"' in body
    nonce = set_cookie_header(page, SIGN_IN_COOKIE)
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in nonce
    assert "<script" not in body and "style=" not in body


def test_sign_in_exchanges_the_key_for_a_session(app, client, user, admin_key):
    console = Console(client)
    response = console.signed_in("acme", admin_key)
    cookie = set_cookie_header(response, SESSION_COOKIE)
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attribute in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # a browser-session cookie
    assert set_cookie_header(response, SIGN_IN_COOKIE).startswith(f"{SIGN_IN_COOKIE}=;")
    token = console.session_token
    assert token and admin_key not in cookie
    with app.app_context():
        [digest] = db.session.execute(sa.select(ConsoleSession.digest)).scalars().all()
        db.session.remove()
    assert bytes(digest) == hashlib.sha256(token.encode()).digest()
    users_page = console.get("/users")
    assert is_page(users_page, 200) and "tenant <strong>acme</strong>" in text(users_page)


def test_development_cookies_are_plain(database_url, tenant):
    """BATON_ENV=development (make run, plain http on 127.0.0.1): no Secure, no __Host-."""
    dev = make_app(database_url, ENV_NAME="development")
    with dev.app_context():
        key = make_admin_key("acme")
    client = dev.test_client()
    form = client.get("/console/sign-in")
    assert "Secure" not in set_cookie_header(form, "baton-console-sign-in")
    signed = client.post("/console/sign-in", data={"csrf_token": form_token(form),
                                                   "tenant": "acme", "admin_key": key})
    assert signed.status_code == 303
    cookie = set_cookie_header(signed, "baton-console")
    assert "Secure" not in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    secret_registry.remember(cookie.split(";")[0].split("=", 1)[1])
    assert client.get("/console/users").status_code == 200


WRONG = "Unknown tenant, or this is not a live admin key of the tenant."


@pytest.mark.parametrize("case", ["wrong key", "other tenant's key", "unknown tenant",
                                  "revoked key", "introspect key"])
def test_refused_sign_ins(app, client, admin_key, case):
    with app.app_context():
        make_tenant("other")
        keys = {"wrong key": "bat_" + "x" * 43, "other tenant's key": make_admin_key("other"),
                "unknown tenant": admin_key, "revoked key": admin_key,
                "introspect key": make_admin_key("acme", scope="introspect")}
        if case == "revoked key":
            admin_keys.revoke_key("acme", 1, utcnow())
            db.session.remove()
    console = Console(client)
    response = console.sign_in("nobody" if case == "unknown tenant" else "acme", keys[case])
    assert is_page(response, 403)
    expected = "introspect scope only" if case == "introspect key" else WRONG
    assert expected in text(response)
    assert 'value="acme"' in text(response) or case == "unknown tenant"  # the tenant is kept
    assert console.session_token is None
    assert console.get("/users").status_code == 303


def test_a_key_typed_into_the_tenant_field_is_never_logged(client, admin_key, caplog):
    caplog.set_level("INFO", logger="app")
    response = Console(client).sign_in(admin_key, admin_key)
    assert is_page(response, 403) and admin_key not in text(response)
    assert caplog.records and not any(admin_key in r.getMessage() or admin_key in str(vars(r))
                                      for r in caplog.records)


@pytest.mark.parametrize("fields, status", [
    ({"tenant": "", "admin_key": "bat_x"}, 400),
    ({"tenant": "acme", "admin_key": "  "}, 400),
    ({"tenant": "acme"}, 400),
    ({"tenant": ["acme", "acme"], "admin_key": "bat_x"}, 400),
    ({"tenant": "acme", "admin_key": "bat_" + "x" * 300}, 403),
    ({"tenant": "a\x00b", "admin_key": "bat_x"}, 400),
])
def test_malformed_sign_ins_are_clear_pages(client, tenant, fields, status):
    form = client.get("/console/sign-in")
    response = client.post("/console/sign-in", data={"csrf_token": form_token(form), **fields})
    assert is_page(response, status)


def test_the_sign_in_form_needs_its_token(client, admin_key):
    form = client.get("/console/sign-in")
    good = form_token(form)
    fields = {"tenant": "acme", "admin_key": admin_key}
    tampered = ("B" if good[0] != "B" else "C") + good[1:]  # never the token itself
    for data in ({**fields}, {**fields, "csrf_token": tampered},
                 {**fields, "csrf_token": [good, good]}):
        assert is_page(client.post("/console/sign-in", data=data), 403)
    # The token is bound to the nonce of this browser's cookie: another browser's is refused.
    other = type(client)(client.application)
    assert is_page(other.post("/console/sign-in", data={**fields, "csrf_token": good}), 403)
    cross = client.post("/console/sign-in", data={**fields, "csrf_token": good},
                        headers={"Sec-Fetch-Site": "cross-site"})
    assert is_page(cross, 403)
    assert client.get_cookie(SESSION_COOKIE) is None
    assert client.post("/console/sign-in", data={**fields, "csrf_token": good}).status_code == 303


def test_sign_in_is_throttled_like_logins(app, client, admin_key):
    console = Console(client)
    for _ in range(5):  # BATON_LOGIN_MAX_PER_USER_ADDRESS
        assert console.sign_in("acme", "bat_guess-guess-guess").status_code == 403
    throttled = console.sign_in("acme", admin_key)
    assert is_page(throttled, 429)
    assert 0 < int(throttled.headers["Retry-After"]) <= 300
    assert "Too many failed sign-ins" in text(throttled)
    assert console.session_token is None
    assert [e["data"]["limit"] for e in events_of(app, "login.throttled")] == ["console_addr"]


# -- the gate: a live session for every page, a form token for every POST -----------------

@pytest.mark.parametrize("path", PAGES + ["/", "/nope"])
def test_pages_need_a_console_session(client, user, path):
    response = client.get(f"/console{path}")
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/sign-in"


@pytest.mark.parametrize("path", PAGES + ["/sign-in", "/users/999", "/static/console.css"])
def test_every_response_has_the_security_headers(console, path):
    response = console.get(path)
    assert response.status_code in (200, 404)
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "'unsafe-inline'" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Content-Type-Options"] == "nosniff"
    if path != "/static/console.css":
        assert headers["Cache-Control"] == "no-store"
        assert "<script" not in text(response) and " style=" not in text(response)
    response.close()  # the stylesheet is sent from an open file


ACTIONS = ["/users/1/disable", "/users/1/logout", "/users/1/remove-factors", "/users/1/enable",
           "/users/1/reset-link", "/sign-out"]


@pytest.mark.parametrize("path", ACTIONS)
def test_every_post_needs_the_session_form_token(app, client, console, admin_key, path):
    with app.app_context():
        sessions_before = len(users_service.user_sessions("acme", 1, utcnow()))
        db.session.remove()
    other = Console(type(client)(client.application))
    other.signed_in("acme", admin_key)
    another_sessions_token = form_token(other.get("/users"))
    for token in ("", "not-a-token", another_sessions_token):
        refused = console.post(path, token=token)
        assert is_page(refused, 403) and "Form expired" in text(refused)
    missing = console.client.post(f"/console{path}", data={})
    assert is_page(missing, 403)
    cross = console.post(path, headers={"Sec-Fetch-Site": "cross-site"})
    assert is_page(cross, 403)
    with app.app_context():  # nothing happened
        assert users_service.get_user("acme", 1).disabled_at is None
        assert len(users_service.user_sessions("acme", 1, utcnow())) == sessions_before
        db.session.remove()
    assert is_page(console.get("/users"), 200)  # still signed in


def test_an_idle_console_session_ends(app, client, admin_key):
    with app.app_context():
        token, _ = console_sessions.sign_in("acme", admin_key, None,
                                            utcnow() - timedelta(minutes=31))
    secret_registry.remember(token)
    client.set_cookie(SESSION_COOKIE, token)
    response = client.get("/console/users")
    assert response.status_code == 303
    assert response.headers["Location"] == "/console/sign-in?done=ended"
    assert set_cookie_header(response, SESSION_COOKIE).startswith(f"{SESSION_COOKIE}=;")
    assert "has ended" in text(client.get(response.headers["Location"]))


def test_a_console_session_ends_after_12_hours(app, client, admin_key):
    start = utcnow() - timedelta(hours=12, minutes=1)
    with app.app_context():
        token, _ = console_sessions.sign_in("acme", admin_key, None, start)
        for step in range(1, 36):  # a request every 20 minutes, the last 21 minutes ago
            assert console_sessions.authenticate(token, start + timedelta(minutes=20 * step))
        db.session.remove()
    secret_registry.remember(token)
    client.set_cookie(SESSION_COOKIE, token)  # used 21 minutes ago: not idle, but too old
    assert client.get("/console/users").headers["Location"] == "/console/sign-in?done=ended"


def test_revoking_the_admin_key_logs_the_console_out(app, console):
    assert is_page(console.get("/users"), 200)
    token = form_token(console.get("/users"))
    with app.app_context():
        admin_keys.revoke_key("acme", 1, utcnow())
        db.session.remove()
    assert console.get("/users").headers["Location"] == "/console/sign-in?done=ended"
    client = console.client
    client.set_cookie(SESSION_COOKIE, console.session_token or "gone")
    refused = console.post("/users/1/disable", token=token)
    assert refused.status_code == 303
    with app.app_context():
        assert users_service.get_user("acme", 1).disabled_at is None
        db.session.remove()


def test_sign_out(app, console):
    token = console.session_token
    out = console.post("/sign-out")
    assert out.status_code == 303 and out.headers["Location"] == "/console/sign-in?done=signed_out"
    assert set_cookie_header(out, SESSION_COOKIE).startswith(f"{SESSION_COOKIE}=;")
    assert "You are signed out." in text(console.client.get(out.headers["Location"]))
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(ConsoleSession)
                                  ).scalar_one() == 0
        db.session.remove()
    console.client.set_cookie(SESSION_COOKIE, token or "")  # the old cookie opens nothing
    assert console.get("/users").headers["Location"] == "/console/sign-in?done=ended"


# -- pages --------------------------------------------------------------------------------

def test_users_search_and_pages(app, console, monkeypatch):
    with app.app_context():
        for name in ("bob", "Carol", "dave"):
            make_user("acme", name)
    monkeypatch.setattr("app.console.users.USERS_PER_PAGE", 2)
    first = text(console.get("/users"))
    assert re.findall(r'/console/users/\d+">(\w+)</a>', first) == ["alice", "bob"]
    cursor = re.search(r'href="/console/users\?cursor=([\w-]+)" rel="next"', first)
    assert cursor
    second = text(console.get(f"/users?cursor={cursor.group(1)}"))
    assert re.findall(r'/console/users/\d+">(\w+)</a>', second) == ["carol", "dave"]
    assert 'rel="next"' not in second and "First page" in second
    found = text(console.get("/users?username=ALICE"))  # normalised as at login
    assert re.findall(r'/console/users/\d+">(\w+)</a>', found) == ["alice"]
    assert "No user is named" in text(console.get("/users?username=nobody"))
    spaced = console.get("/users?username=%20alice")
    assert is_page(spaced, 400) and "must not start or end with spaces" in text(spaced)
    for bad in ("/users?cursor=%%%", "/users?page=2", "/users?username=a&username=b"):
        assert is_page(console.get(bad), 400), bad


def test_user_page_shows_sessions_and_factors(app, client, console):
    flow = SignIn(client)
    plain = client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": PASSWORD},
        headers={"User-Agent": "curl/8"}).get_json()
    first = flow.sign_in(client_id="web")
    _, secret, codes, _ = flow.enrol_totp(first["access_token"], name="phone")
    flow.sign_in(otp_secret=secret, client_id="mobile-app")
    secret_registry.remember(*codes)
    page = text(console.get("/users/1"))
    rows = re.findall(r"<tr>\s*<th scope=\"row\"><code>([0-9a-f-]{36})</code></th>\s*"
                      r"<td>([^<]*)</td>\s*<td>([^<]*)</td>", page)
    assert sorted((amr, client_id) for _, amr, client_id in rows) == [
        ("pwd", "web"), ("pwd", "—"), ("pwd, otp, mfa", "mobile-app")]
    assert plain["session_id"] in page and "curl/8" in page
    assert re.search(r"<th scope=\"row\">totp</th>\s*<td>phone</td>", page)
    assert "Recovery codes left: 10." in page
    times = re.findall(r'<time datetime="([^"]+)">', page)
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t) for t in times)


@pytest.mark.parametrize("path", ["/users/999", "/users/abc", "/users/0", "/users/2",
                                  "/users/99999999999999999999", "/users/999/disable",
                                  "/users/2/logout", "/users/1/sessions/nope/revoke",
                                  "/users/1/sessions/00000000-0000-0000-0000-000000000000/revoke",
                                  "/nope", "/static/nope.css"])
def test_unknown_things_are_404_pages(app, console, path):
    with app.app_context():
        make_tenant("other")
        make_user("other", "mallory")  # user 2, of another tenant
    response = console.get(path)
    assert is_page(response, 404)
    assert "Not found" in text(response)


@pytest.mark.parametrize("path", ["/users/999/disable", "/users/2/logout",
                                  "/users/999/remove-factors", "/users/999/enable",
                                  "/users/999/reset-link",
                                  "/users/1/sessions/00000000-0000-0000-0000-000000000000/revoke"])
def test_actions_on_unknown_users_and_sessions_are_404_pages(app, console, path):
    with app.app_context():
        make_tenant("other")
        make_user("other", "mallory")
    assert is_page(console.post(path), 404)


def test_disable_and_enable(app, client, console, tokens):
    refresh_token = tokens.login().get_json()["refresh_token"]
    confirm = console.get("/users/1/disable")
    assert "every session of theirs is revoked" in text(confirm)
    done = console.confirm("/users/1/disable")
    assert done.status_code == 303 and done.headers["Location"] == "/console/users/1?done=disabled"
    page = text(console.client.get(done.headers["Location"]))
    assert "The user is disabled" in page and "<strong>disabled</strong> since" in page
    assert refresh(client, refresh_token) == 400
    actor = ("admin_key", "1")
    assert [e["actor"] for e in events_of(app, "user.disabled")] == [actor]
    assert [(e["actor"], e["data"]["reason"]) for e in events_of(app, "session.revoked")] == [
        (actor, "user_disabled")]
    enabled = console.post("/users/1/enable")
    assert enabled.headers["Location"] == "/console/users/1?done=enabled"
    assert [e["actor"] for e in events_of(app, "user.enabled")] == [actor]
    assert tokens.login().status_code == 200


def test_revoke_one_session(app, client, console, tokens):
    first, second = (tokens.login().get_json() for _ in range(2))
    path = f"/users/1/sessions/{first['session_id']}/revoke"
    confirm = text(console.get(path))
    assert first["session_id"] in confirm and second["session_id"] not in confirm
    done = console.confirm(path)
    assert done.headers["Location"] == "/console/users/1?done=session_revoked"
    assert refresh(client, first["refresh_token"]) == 400
    assert refresh(client, second["refresh_token"]) == 200
    [revoked] = events_of(app, "session.revoked")
    assert revoked["actor"] == ("admin_key", "1")
    assert revoked["data"] == {"session_id": first["session_id"], "reason": "admin",
                               "user_id": "1"}
    assert is_page(console.get(path), 404)  # no longer a live session of the user


def test_log_out_everywhere(app, client, console, tokens):
    issued = [tokens.login().get_json() for _ in range(2)]
    assert console.confirm("/users/1/logout").headers["Location"].endswith("done=logged_out")
    assert [refresh(client, t["refresh_token"]) for t in issued] == [400, 400]
    assert {e["actor"] for e in events_of(app, "session.revoked")} == {("admin_key", "1")}


def test_remove_second_factors(app, client, console):
    flow = SignIn(client)
    issued = flow.sign_in()
    _, _, codes, _ = flow.enrol_totp(issued["access_token"])
    secret_registry.remember(*codes)
    assert "Remove second factors" in text(console.get("/users/1"))
    done = console.confirm("/users/1/remove-factors")
    assert done.headers["Location"].endswith("done=factors_removed")
    page = text(console.client.get(done.headers["Location"]))
    assert "No second factor." in page and "Recovery codes left: 0." in page
    assert [e["actor"] for e in events_of(app, "mfa.removed")] == [("admin_key", "1")]
    assert refresh(client, issued["refresh_token"]) == 400


def test_reset_link(client, console, tokens):
    page = console.post("/users/1/reset-link")
    assert is_page(page, 200) and page.headers["Cache-Control"] == "no-store"
    token = re.search(r'<textarea id="reset-token"[^>]*>([^<]+)</textarea>', text(page))
    assert token
    secret_registry.remember(token.group(1))
    done = client.post("/v1/tenants/acme/password/reset",
                       json={"token": token.group(1), "new_password": "reset in the console"})
    assert done.status_code == 200
    assert tokens.login(password="reset in the console").status_code == 200


def test_events_page_filters_and_pages(app, console, tokens, monkeypatch):
    tokens.login()
    with app.app_context():
        users_service.disable_user("acme", "alice", utcnow())
        db.session.remove()
    everything = eventually(lambda: text(console.get("/events")),
                            lambda page: "user.disabled" in page)
    for kind in ("user.created", "session.started", "user.disabled", "session.revoked"):
        assert f"<td>{kind}</td>" in everything
    # A list in an event's data (the session's amr) reads as a list, not as Python's repr.
    assert "<dt>amr</dt><dd>pwd</dd>" in everything and "[&#39;" not in everything
    only = text(console.get("/events?type=session.revoked"))
    assert re.findall(r"<td>([a-z_]+\.[a-z_.]+)</td>", only) == ["session.revoked"]
    assert '<option value="session.revoked" selected>' in only
    monkeypatch.setattr("app.console.routes.EVENTS_PER_PAGE", 1)
    seen, path = [], "/events"
    while path:
        page = text(console.get(path))
        seen += re.findall(r"<td>([a-z_]+\.[a-z_.]+)</td>", page)
        link = re.search(r'href="/console(/events\?[^"]+)" rel="next"', page)
        path = link.group(1).replace("&amp;", "&") if link else ""
    assert seen == ["user.created", "admin_key.created", "session.started", "user.disabled",
                    "session.revoked"]
    for bad in ("/events?type=user.exploded", "/events?after=-1", "/events?after=x",
                "/events?after=99999999999999999999", "/events?limit=5"):
        assert is_page(console.get(bad), 400), bad


def test_settings_page(app, console):
    with app.app_context():
        tenants.update_tenant("acme", reuse_interval=0, mfa="required", password_grant=False,
                              cors_origins=("https://app.example.com",), step_up_max_age=600,
                              password_min_length=12)
    page = text(console.get("/settings"))
    for fact in ("<dt>Reuse interval</dt><dd>0 s (strict", "<dd>12 to 1024 characters",
                 "<dt>Second factor (mfa)</dt><dd>required</dd>",
                 "<dt>Password grant</dt><dd>off</dd>", "<dd>600 s</dd>", "<dd>900 s</dd>",
                 "<code>https://app.example.com</code>", "the host of BATON_BASE_URL"):
        assert fact in page, fact


# -- bad input is never a 500 -------------------------------------------------------------

@pytest.mark.parametrize("method, path, data", [
    ("GET", "/users?username=%00", None),
    ("GET", "/users?username=" + "a" * 5000, None),
    ("GET", "/users?cursor=" + "A" * 1000, None),
    ("GET", "/events?type=%00", None),
    ("GET", "/events?after=1e3", None),
    ("GET", "/users/1?done=%3Cscript%3E", None),
    ("GET", "/users/%00", None),
    ("GET", "/users/1/sessions/%00/revoke", None),
    ("POST", "/users/1/disable", b"\xff\xfe"),
    ("POST", "/users/1/disable", "csrf_token=%ZZ"),
    ("DELETE", "/users/1", None),
    ("PUT", "/sign-in", None),
    ("POST", "/users", None),
])
def test_malformed_requests_get_pages_never_a_500(console, method, path, data):
    response = console.client.open(f"/console{path}", method=method, data=data,
                                   content_type="application/x-www-form-urlencoded")
    assert 400 <= response.status_code < 500 or response.status_code == 200, response.status_code
    assert response.mimetype == "text/html"
    assert "<script>" not in text(response)


def test_a_database_outage_is_a_503_page(console, monkeypatch):
    def unavailable(*args: Any, **kw: Any) -> Any:
        raise DatabaseUnavailable(3)

    monkeypatch.setattr(users_service, "list_users", unavailable)
    response = console.get("/users")
    assert is_page(response, 503) and response.headers["Retry-After"] == "3"


def test_the_console_can_be_turned_off(database_url, tenant):
    off = make_app(database_url, CONSOLE_ENABLED=False)
    client = off.test_client()
    for path in ("/console/", "/console/sign-in", "/console/static/console.css"):
        response = client.get(path)
        assert response.status_code == 404 and response.is_json


def test_cookie_names_follow_the_environment(app):
    with app.test_request_context():
        assert auth.session_cookie() == SESSION_COOKIE
        assert auth.sign_in_cookie() == SIGN_IN_COOKIE


# -- accessibility habits -----------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES + ["/users/1/sessions/{session}/revoke", "/nope"])
def test_every_field_has_a_label_and_every_page_one_heading(console, tokens, path):
    session = tokens.login().get_json()["session_id"]
    page = text(console.get(path.format(session=session)))
    assert page.startswith("<!doctype html>") and '<html lang="en">' in page
    assert len(re.findall(r"<h1[ >]", page)) == 1
    labels = set(re.findall(r'<label for="([^"]+)">', page))
    fields = re.findall(r"<(input|select|textarea)\b([^>]*)>", page)
    for tag, attributes in fields:
        if 'type="hidden"' in attributes:
            continue
        field_id = re.search(r'\bid="([^"]+)"', attributes)
        assert field_id and field_id.group(1) in labels, (tag, attributes)
    assert '<main id="main">' in page and 'href="#main"' in page  # a skip link


def test_the_sign_in_page_labels_its_fields(client, tenant):
    page = text(client.get("/console/sign-in"))
    for field in re.findall(r'<input id="([^"]+)"', page):
        assert f'<label for="{field}">' in page
