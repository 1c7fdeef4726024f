"""Rendering for the console: pages, error pages, the time filter and the notices.

Every error inside the console is a page of its own (never the API's JSON, never a 500 for
anything a browser sends): a service's refusal gets its status (404 for an unknown user or
session, 400 for bad input, 429 with Retry-After, 503 with Retry-After), werkzeug's errors
theirs, and anything unexpected is logged and answered with a plain 500 page.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime
from datetime import timezone
from typing import Any

from flask import Response
from flask import g
from flask import render_template
from werkzeug.exceptions import HTTPException

from app.console import bp
from app.extensions import db
from app.services import errors as domain

log = logging.getLogger(__name__)

# What a redirect after an action says (`?done=`): a fixed table, never text from the URL.
NOTICES = {
    "disabled": "The user is disabled and every session of theirs was revoked.",
    "enabled": "The user is enabled again.",
    "session_revoked": "The session was revoked.",
    "logged_out": "Every session of the user was revoked.",
    "factors_removed": "Every second factor and recovery code of the user was removed, and "
                       "every session revoked.",
    "signed_out": "You are signed out.",
    "ended": "Your console session has ended (signed out, 30 minutes idle, 12 hours old, or "
             "its admin key was revoked). Sign in again.",
}


class ConsoleError(Exception):
    """A refusal the console answers with an error page of its own."""

    def __init__(self, status: int, title: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message
        self.headers = headers or {}


def bad_input(message: str) -> ConsoleError:
    return ConsoleError(400, "Bad request", message)


def not_found(message: str = "There is no such page.") -> ConsoleError:
    return ConsoleError(404, "Not found", message)


def page(template: str, status: int = 200, **context: Any) -> Response:
    """A console page."""
    response = Response(render_template(f"console/{template}", **context), status=status,
                        mimetype="text/html")
    return response


def error_page(error: ConsoleError) -> Response:
    response = page("error.html", error.status, title=error.title, message=error.message)
    response.headers.update(error.headers)
    return response


def _service_error(exc: domain.ServiceError) -> ConsoleError:
    """A service's refusal as a console error (the console's own table, like app.errors')."""
    if isinstance(exc, domain.Missing):
        return not_found(exc.message[:1].upper() + exc.message[1:])
    if isinstance(exc, (domain.LoginThrottled, domain.TooManyAttempts)):
        return ConsoleError(429, "Too many attempts",
                            f"Too many failed attempts; try again in {exc.retry_after} s.",
                            {"Retry-After": str(max(1, exc.retry_after))})
    if isinstance(exc, domain.Unavailable):
        return ConsoleError(503, "Temporarily unavailable",
                            "The service is temporarily unavailable; try again in a moment.",
                            {"Retry-After": str(max(1, exc.retry_after))})
    return bad_input(exc.message[:1].upper() + exc.message[1:])


@bp.errorhandler(ConsoleError)
def handle_console_error(exc: ConsoleError) -> Response:
    return error_page(exc)


@bp.errorhandler(domain.ServiceError)
def handle_service_error(exc: domain.ServiceError) -> Response:
    return error_page(_service_error(exc))


@bp.errorhandler(HTTPException)
def handle_http_exception(exc: HTTPException) -> Response:
    code = exc.code or 500
    titles = {400: "Bad request", 404: "Not found", 405: "Method not allowed",
              413: "Request too large"}
    response = error_page(ConsoleError(code, titles.get(code, exc.name),
                                       exc.description or exc.name))
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value  # e.g. Allow on 405
    return response


@bp.errorhandler(Exception)
def handle_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error in the console")
    db.session.rollback()
    return error_page(ConsoleError(500, "Unexpected error",
                                   "Something went wrong on our side; it has been logged."))


@bp.app_template_filter("utc")
def utc(value: datetime | str | None) -> str:
    """ISO 8601 in UTC, to the second: 2026-12-08T09:30:00Z (from a datetime or the ISO
    text of an event body)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.app_template_filter("event_value")
def event_value(value: Any) -> str:
    """A value of an event's data as a person reads it: a list joined by commas, an object
    as JSON, nothing as a dash (never Python's repr)."""
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(event_value(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


@bp.context_processor
def console_context() -> dict[str, Any]:
    """What every console template may use: the signed-in session and its form token."""
    return {"console": g.get("console"), "form_token": g.get("form_token", "")}
