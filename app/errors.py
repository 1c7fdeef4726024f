"""OAuth error hierarchy (RFC 6749 §5.2, RFC 6750 §3) and the one place that renders errors."""
from __future__ import annotations

import logging
from typing import Any
from typing import Mapping

from flask import Flask
from flask import Response
from flask import jsonify
from werkzeug.exceptions import HTTPException

from app.extensions import db
from app.services import errors as domain

log = logging.getLogger(__name__)


class OAuthError(Exception):
    """An error with an RFC 6749 code; subclasses only set data. `fields` are members the
    body carries besides `error` and `error_description` (e.g. a challenge's `auth_session`)."""

    error = "invalid_request"
    status_code = 400
    description = "The request is missing a parameter or is otherwise malformed."
    headers: dict[str, str] = {}
    fields: Mapping[str, Any] = {}

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.description)
        if description:
            self.description = description


class InvalidRequest(OAuthError):
    pass


class InvalidGrant(OAuthError):
    # One fixed text for every cause: no oracle (SPEC §4.1).
    error = "invalid_grant"
    description = "The provided grant is invalid, expired or revoked."

    def __init__(self) -> None:
        super().__init__()


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    description = "The grant type is not supported."


class InvalidToken(OAuthError):
    error = "invalid_token"
    status_code = 401
    description = "The access token is invalid or expired."
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class NotFound(OAuthError):
    error = "not_found"
    status_code = 404
    description = "Not found."


class InsufficientScope(OAuthError):
    # RFC 6750 §3.1: a valid credential that may not do this.
    error = "insufficient_scope"
    status_code = 403
    description = "The admin key does not have the scope this endpoint needs."

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.headers = {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'}


class Conflict(OAuthError):
    error = "conflict"
    status_code = 409
    description = "The resource already exists."


class SlowDown(OAuthError):
    error = "slow_down"
    status_code = 429
    description = "Too many failed attempts; retry later."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.headers = {"Retry-After": str(max(1, int(retry_after)))}


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503
    description = "The service is temporarily unavailable; retry later."

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__()
        self.headers = {"Retry-After": str(max(1, int(retry_after)))}


class KeyUnavailable(TemporarilyUnavailable):
    """No configured secret decrypts a signing key: 503, and nothing was written."""

    description = "The signing key is unavailable; retry later."


# Flask/werkzeug status codes → RFC-style error codes.
HTTP_ERROR_CODES = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def http_error(exc: domain.ServiceError) -> OAuthError:
    """The SPEC's HTTP error for a service's refusal: the one translation table."""
    if isinstance(exc, domain.UnknownTenant):
        return NotFound("Unknown tenant.")
    if isinstance(exc, domain.Missing):
        return NotFound(exc.message)
    if isinstance(exc, domain.UsernameTaken):
        return Conflict(exc.message)
    if isinstance(exc, domain.GrantRejected):
        return InvalidGrant()
    if isinstance(exc, domain.AccessDenied):
        return InvalidToken()
    if isinstance(exc, domain.ScopeMissing):
        return InsufficientScope(exc.scope)
    if isinstance(exc, domain.LoginThrottled):
        return SlowDown(exc.retry_after)
    if isinstance(exc, domain.KeyUnavailable):
        return KeyUnavailable(exc.retry_after)
    if isinstance(exc, domain.Unavailable):
        return TemporarilyUnavailable(exc.retry_after)
    return InvalidRequest(exc.message)  # InvalidInput and anything not listed above


def error_response(error: str, description: str, status: int,
                   headers: Mapping[str, str] | None = None,
                   fields: Mapping[str, Any] | None = None) -> Response:
    """The JSON body of every error."""
    response = jsonify({**(fields or {}), "error": error, "error_description": description})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    """Turn every error, ours or Flask's, into the RFC 6749 JSON shape."""

    @app.errorhandler(OAuthError)
    def handle_oauth_error(exc: OAuthError) -> Response:
        return error_response(exc.error, exc.description, exc.status_code, exc.headers,
                              exc.fields)

    @app.errorhandler(domain.ServiceError)
    def handle_service_error(exc: domain.ServiceError) -> Response:
        return handle_oauth_error(http_error(exc))

    @app.errorhandler(HTTPException)
    def handle_http_exception(exc: HTTPException) -> Response:
        code = exc.code or 500
        error = HTTP_ERROR_CODES.get(code, "server_error" if code >= 500 else "invalid_request")
        # Keep what werkzeug adds (e.g. Allow on 405), drop its HTML content type.
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(error, exc.description or exc.name, code, headers)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        # Internals stay in the server log; the client gets a generic body.
        log.exception("unhandled error")
        db.session.rollback()
        return error_response("server_error", "An unexpected error occurred.", 500)
