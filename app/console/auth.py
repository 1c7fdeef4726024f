"""The console's gate, in one place for every view: the console session, the form token of
every POST, and the response headers.

Cookies are HttpOnly and SameSite=Strict, and Secure with the `__Host-` prefix (bound to this
host, path `/`, never set by a sibling domain) everywhere except BATON_ENV=development, whose
`make run` serves plain http on 127.0.0.1. Neither cookie, the admin key nor a form token is
ever logged (app.logs logs the route, never a header, a cookie or a body).
"""
from __future__ import annotations

from typing import Callable

from flask import Response
from flask import current_app
from flask import g
from flask import redirect
from flask import request
from flask import url_for
from werkzeug.wrappers import Response as BaseResponse

from app.console import bp
from app.console.pages import ConsoleError
from app.http.web import utcnow
from app.services.signin import console_sessions

# No script may run, no style but the stylesheet, no frame may hold a console page, and
# forms post only here.
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
PUBLIC = frozenset({"console.sign_in", "console.sign_in_form", "console.static"})
FORM_FIELD = "csrf_token"


def _secure() -> bool:
    return current_app.config["ENV_NAME"] != "development"


def cookie_name(base: str) -> str:
    """`__Host-` + base where cookies are Secure (the prefix requires it)."""
    return f"__Host-{base}" if _secure() else base


def session_cookie() -> str:
    return cookie_name("baton-console")


def sign_in_cookie() -> str:
    return cookie_name("baton-console-sign-in")


def set_cookie(response: BaseResponse, name: str, value: str) -> None:
    """A browser-session cookie (gone when the browser closes; the server ends it sooner)."""
    response.set_cookie(name, value, path="/", secure=_secure(), httponly=True,
                        samesite="Strict")


def clear_cookie(response: BaseResponse, name: str) -> None:
    response.delete_cookie(name, path="/", secure=_secure(), httponly=True, samesite="Strict")


@bp.before_request
def require_console_session() -> BaseResponse | None:
    """Every view but sign-in and the stylesheet needs a live console session, and every POST
    its form token; a cross-site POST is refused before anything else."""
    if request.method == "POST" and request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise ConsoleError(403, "Refused", "A form of another site cannot post here.")
    if request.endpoint in PUBLIC:
        return None
    token = request.cookies.get(session_cookie(), "")
    session = console_sessions.authenticate(token, utcnow()) if token else None
    if session is None:
        return _to_sign_in(ended=bool(token))
    g.console, g.console_token = session, token
    g.form_token = console_sessions.form_token(token)
    if request.method == "POST":
        check_form_token(lambda presented: console_sessions.form_token_matches(token, presented))
    return None


def _to_sign_in(ended: bool) -> BaseResponse:
    """Back to the sign-in page (303), forgetting a cookie that no longer opens anything."""
    target = url_for("console.sign_in_form", done="ended") if ended else url_for(
        "console.sign_in_form")
    response = redirect(target, 303)
    if ended:
        clear_cookie(response, session_cookie())
    return response


def check_form_token(matches: Callable[[str], bool]) -> None:
    """The POST's one `csrf_token` field must match (403 otherwise)."""
    given = request.form.getlist(FORM_FIELD)
    if len(given) != 1 or not matches(given[0]):
        raise ConsoleError(
            403, "Form expired",
            "This form is out of date or did not come from this console. Go back, reload the "
            "page and try again.")


@bp.after_request
def security_headers(response: Response) -> Response:
    """The same headers on every console response, error pages and the stylesheet too; pages
    are never cached (they show users, sessions and reset tokens)."""
    response.headers.update(HEADERS)
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response
