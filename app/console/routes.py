"""Console views: sign-in and sign-out, security events, tenant settings (users: users.py)."""
from __future__ import annotations

from flask import Response
from flask import current_app
from flask import g
from flask import redirect
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from app.console import bp
from app.console import forms
from app.console.auth import check_form_token
from app.console.auth import clear_cookie
from app.console.auth import session_cookie
from app.console.auth import set_cookie
from app.console.auth import sign_in_cookie
from app.console.pages import NOTICES
from app.console.pages import bad_input
from app.console.pages import not_found
from app.console.pages import page
from app.http.web import client_address
from app.http.web import utcnow
from app.models.tenant import valid_slug
from app.services.audit import events
from app.services.errors import AccessDenied
from app.services.errors import LoginThrottled
from app.services.errors import ScopeMissing
from app.services.signin import console_sessions
from app.services.tenancy import tenants

EVENTS_PER_PAGE = 50
MAX_KEY_LENGTH = 256
WRONG_KEY = ("Unknown tenant, or this is not a live admin key of the tenant. Check both and "
             "try again.")
INTROSPECT_ONLY = ("This key has the introspect scope only. The console needs a key of scope "
                   "admin (flask admin-keys create TENANT --scope admin).")


def _sign_in_page(status: int = 200, error: str | None = None, tenant: str = "",
                  headers: dict[str, str] | None = None) -> Response:
    """The sign-in form, bound to the nonce of the browser's sign-in cookie (made if absent).
    The tenant typed is shown again only when it is a slug (not a key pasted there)."""
    tenant = tenant if valid_slug(tenant) else ""
    nonce = request.cookies.get(sign_in_cookie(), "")
    fresh = not nonce
    nonce = nonce or console_sessions.new_token()
    args = forms.query(("done",)) if request.method == "GET" else {}
    response = page("sign_in.html", status, error=error, tenant=tenant,
                    notice=NOTICES.get(args.get("done", "")),
                    sign_in_token=console_sessions.sign_in_form_token(nonce))
    response.headers.update(headers or {})
    if fresh:
        set_cookie(response, sign_in_cookie(), nonce)
    return response


@bp.get("/sign-in")
def sign_in_form() -> ResponseReturnValue:
    return _sign_in_page()


@bp.post("/sign-in")
def sign_in() -> ResponseReturnValue:
    """Exchange an admin key for a console session (throttled like logins)."""
    nonce = request.cookies.get(sign_in_cookie(), "")
    check_form_token(lambda given: console_sessions.sign_in_form_token_matches(nonce, given))
    tenant, key = forms.field("tenant", strip=True), forms.field("admin_key", strip=True)
    if not tenant or not key:
        return _sign_in_page(400, "Enter the tenant and an admin key.", tenant)
    if len(key) > MAX_KEY_LENGTH:
        return _sign_in_page(403, WRONG_KEY, tenant)
    try:
        token, _ = console_sessions.sign_in(tenant, key, client_address(), utcnow())
    except AccessDenied:
        return _sign_in_page(403, WRONG_KEY, tenant)
    except ScopeMissing:
        return _sign_in_page(403, INTROSPECT_ONLY, tenant)
    except LoginThrottled as throttled:
        wait = max(1, throttled.retry_after)
        return _sign_in_page(429, f"Too many failed sign-ins; try again in {wait} s.", tenant,
                             {"Retry-After": str(wait)})
    response = redirect(url_for("console.users_page"), 303)
    set_cookie(response, session_cookie(), token)
    clear_cookie(response, sign_in_cookie())
    return response


@bp.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    console_sessions.sign_out(g.console_token)
    response = redirect(url_for("console.sign_in_form", done="signed_out"), 303)
    clear_cookie(response, session_cookie())
    return response


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("console.users_page"), 303)


@bp.get("/events")
def events_page() -> ResponseReturnValue:
    """The tenant's security events, oldest first in commit-safe order, filtered by type."""
    args = forms.query(("type", "after"))
    kind = args.get("type") or None
    if kind is not None and kind not in events.KINDS:
        raise bad_input(f"type must be one of {', '.join(events.KINDS)}.")
    after = forms.event_id(args, "after")
    found = events.list_events(g.console.tenant_id, after, EVENTS_PER_PAGE, kind=kind)
    more = len(found.events) == EVENTS_PER_PAGE
    return page("events.html", section="events", events=found.events, kinds=events.KINDS,
                kind=kind or "", after=after, next_after=found.next_after if more else None)


@bp.get("/settings")
def settings_page() -> ResponseReturnValue:
    """The tenant's settings, read-only (they change with `flask tenants update`)."""
    settings = tenants.tenant_settings(g.console.tenant_slug)
    base_url = current_app.config["BASE_URL"]
    return page("settings.html", section="settings", settings=settings, base_url=base_url)


@bp.route("/<path:unknown>", methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])
def unknown_page(unknown: str) -> ResponseReturnValue:
    """Anything else under /console/ (for a signed-in operator: others are sent to sign in)."""
    raise not_found()
