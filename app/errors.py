"""OAuth error hierarchy (RFC 6749 §5.2, RFC 6750 §3) and the one place that renders errors."""
from __future__ import annotations

import logging
from typing import Any
from typing import Callable
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

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description)


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    description = "The grant type is not supported."


class InsufficientUserAuthentication(OAuthError):
    """RFC 9470 §3: the access token is fine, but its sign-in is too old for this change."""

    error = "insufficient_user_authentication"
    status_code = 401
    description = "A more recent sign-in is required for this change."

    def __init__(self, max_age: int, description: str | None = None) -> None:
        super().__init__(description)
        self.headers = {"WWW-Authenticate": (
            f'Bearer error="{self.error}", error_description="{self.description}", '
            f"max_age={int(max_age)}")}


class InsufficientAuthorization(OAuthError):
    """draft-ietf-oauth-first-party-apps §5.2.2: the sign-in needs more (a second factor,
    or enrolling one); the body carries the auth_session and what can answer it."""

    error = "insufficient_authorization"
    description = "A second factor is required."

    def __init__(self, fields: dict) -> None:
        super().__init__()
        self.fields = fields


class InvalidSession(OAuthError):
    error = "invalid_session"
    description = "The auth_session is invalid, used or expired."


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


# A service's refusal -> the SPEC's HTTP error; the first matching class wins (subclasses
# first). Anything not listed (InvalidInput, ...) is invalid_request with its message.
_TRANSLATIONS: list[tuple[type[domain.ServiceError], Callable[[Any], OAuthError]]] = [
    (domain.UnknownTenant, lambda e: NotFound("Unknown tenant.")),
    (domain.Missing, lambda e: NotFound(e.message)),
    (domain.UsernameTaken, lambda e: Conflict(e.message)),
    # told only to a caller who knew the password (SPEC §13.3)
    (domain.SecondFactorRequired, lambda e: InvalidGrant(e.message)),
    (domain.PasskeyRejected, lambda e: InvalidGrant(e.message)),
    (domain.GrantRejected, lambda e: InvalidGrant()),
    (domain.GrantDisabled, lambda e: UnsupportedGrantType()),
    (domain.AccessDenied, lambda e: InvalidToken()),
    (domain.StepUpRequired, lambda e: InsufficientUserAuthentication(e.max_age, e.message)),
    (domain.ScopeMissing, lambda e: InsufficientScope(e.scope)),
    (domain.InsufficientAuthorization, lambda e: InsufficientAuthorization(_challenge_body(e))),
    (domain.InvalidSession, lambda e: InvalidSession()),
    (domain.LoginThrottled, lambda e: SlowDown(e.retry_after)),
    (domain.TooManyAttempts, lambda e: SlowDown(e.retry_after)),
    (domain.KeyUnavailable, lambda e: KeyUnavailable(e.retry_after)),
    (domain.Unavailable, lambda e: TemporarilyUnavailable(e.retry_after)),
]


def http_error(exc: domain.ServiceError) -> OAuthError:
    """The SPEC's HTTP error for a service's refusal: the one translation table."""
    for kind, translate in _TRANSLATIONS:
        if isinstance(exc, kind):
            return translate(exc)
    return InvalidRequest(exc.message)


def _challenge_body(exc: domain.InsufficientAuthorization) -> dict:
    body: dict = {"auth_session": exc.auth_session, "factors": exc.factors}
    if exc.enroll is not None:
        body["enroll"] = exc.enroll
    if exc.webauthn is not None:
        body["webauthn"] = exc.webauthn
    return body


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
