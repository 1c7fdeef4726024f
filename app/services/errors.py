"""Domain errors: what a service refuses, in its own words (no HTTP status here).

The blueprints translate them to the SPEC's HTTP errors in one place
(app.errors.http_error, used by the app's error handler) and the CLI to one
`Error: <message>` line (app.cli.support.service_errors).
"""
from __future__ import annotations

from datetime import datetime


class ServiceError(Exception):
    """Base of every refusal a service raises on purpose; `message` is its wording."""

    message = "the request was refused"

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class InvalidInput(ServiceError):
    """A value Baton cannot accept (a bad setting, username, cursor, URL...)."""


class PasswordPolicyViolation(InvalidInput):
    """A new password the tenant's policy refuses."""


class TenantExists(InvalidInput):
    def __init__(self, slug: str) -> None:
        super().__init__(f"tenant {slug!r} already exists")


class UsernameTaken(ServiceError):
    def __init__(self, username: str, tenant_slug: str) -> None:
        super().__init__(f"user {username!r} already exists in tenant {tenant_slug!r}")


class Missing(ServiceError):
    """Something the request names does not exist (or is not the caller's)."""


class UnknownTenant(Missing):
    def __init__(self, slug: str) -> None:
        super().__init__(f"unknown tenant {slug!r}")
        self.slug = slug


class UserNotFound(Missing):
    def __init__(self, tenant_slug: str, who: str | int) -> None:
        super().__init__(f"no user {who!r} in tenant {tenant_slug!r}")


class SessionNotFound(Missing):
    message = "No such session."


class FactorNotFound(Missing):
    message = "No such factor."


class GrantRejected(ServiceError):
    """A grant that gets the one `invalid_grant` answer: no oracle (SPEC §4.1)."""

    message = "The provided grant is invalid, expired or revoked."


class InvalidCredentials(GrantRejected):
    """Wrong password, unknown or disabled user, a bad or spent password reset token."""


class SecondFactorRequired(GrantRejected):
    """The password grant for a user who must sign in with a second factor (SPEC §13.3):
    only a caller who knew the password is told, as at the challenge endpoint."""

    message = ("A second factor is required: sign in through the authorization challenge "
               "endpoint.")


class PasskeyRejected(ServiceError):
    """A passkey registration that does not verify (SPEC §13.5): a challenge unknown, used
    or expired, a wrong origin or RP ID, no user presence... The registering user is told
    why (invalid_grant, as for a wrong TOTP confirmation code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"The passkey could not be verified: {reason}")


class GrantDisabled(ServiceError):
    """A grant type the tenant turned off (the password grant, SPEC §13.3)."""

    message = "The grant type is not supported."


class TokenRejected(GrantRejected):
    """An unknown, expired, revoked or replayed refresh token."""


class AccessDenied(ServiceError):
    """A bearer credential (access token or admin key) that is missing, bad or expired."""

    message = "The access token is invalid or expired."


class StepUpRequired(ServiceError):
    """A valid access token whose sign-in is older than the tenant allows for this change
    (RFC 9470: insufficient_user_authentication, with the max_age to meet)."""

    message = "A more recent sign-in is required for this change."

    def __init__(self, max_age: int, message: str | None = None) -> None:
        super().__init__(message)
        self.max_age = max_age


class InsufficientAuthorization(ServiceError):
    """The challenge flow needs more from the user (draft-ietf-oauth-first-party-apps):
    a second factor, or enrolling one. Carries what the client is told."""

    message = "A second factor is required."

    def __init__(self, auth_session: str, factors: list[str], *,
                 enroll: list[str] | None = None, webauthn: dict | None = None) -> None:
        super().__init__()
        self.auth_session = auth_session
        self.factors = factors
        self.enroll = enroll
        self.webauthn = webauthn


class InvalidSession(ServiceError):
    """An `auth_session` that is unknown, another tenant's, used, ended or expired."""

    message = "The auth_session is invalid, used or expired."


class ScopeMissing(ServiceError):
    """A valid admin key without the scope the operation needs."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"the admin key does not have the {scope!r} scope")
        self.scope = scope


class LoginThrottled(ServiceError):
    """Too many failed logins; carries what the login.throttled event needs (`tenant_id`
    None: a console sign-in that named no tenant, so no tenant's event)."""

    message = "Too many failed attempts; retry later."

    def __init__(self, retry_after: int, tenant_id: int | None,
                 limits: list[tuple[str, str, datetime]]) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.tenant_id = tenant_id
        self.limits = limits


class TooManyAttempts(ServiceError):
    """Too many wrong second-factor answers for this user in the window (429)."""

    message = "Too many failed attempts; retry later."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """Try again later: nothing was written."""

    message = "The service is temporarily unavailable; retry later."

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__()
        self.retry_after = retry_after


class DatabaseUnavailable(Unavailable):
    """The database is unreachable, or a lock or statement timeout expired."""


class KeyUnavailable(Unavailable):
    """No configured secret decrypts the tenant's signing key."""

    message = "The signing key is unavailable; retry later."
