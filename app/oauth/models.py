"""Request and answer models of the OAuth endpoints (RFC 6749, 7009, 7662, 8414; SPEC §4).

Requests are RFC 6749 parameters (a form or a JSON object of strings, app.http.models); the
token request is one model per grant type, chosen by `grant_type` (TOKEN_REQUEST).
"""
from __future__ import annotations

import re
from typing import Annotated
from typing import Literal

from pydantic import AfterValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import StringConstraints
from pydantic import model_validator
from pydantic_core import PydanticCustomError

from app.http.inputs import Grants
from app.http.models import MAX_TOKEN_LENGTH
from app.http.models import NO_NUL
from app.http.models import Absent
from app.http.models import AnswerModel
from app.http.models import OptionalParam
from app.http.models import Parameters
from app.http.models import Required
from app.http.models import TokenParam
from app.http.models import Url
from app.http.models import described
from app.http.models import example
from app.http.shared import SessionFields
from app.models.tenant import MAX_PASSWORD_LENGTH
from app.models.user import MAX_USERNAME_LENGTH
from app.services.accounts.users import validate_credentials

SESSION_ID = "0b6f3c9e-8a7d-4f43-9d0e-2f1c5a7b9e11"
ISSUER = "https://auth.example.com/v1/tenants/acme"
# The username's rules (SPEC §11), which the service words itself.
Username = Annotated[Required, described(maxLength=MAX_USERNAME_LENGTH,
                                         pattern=r"^[^\s\x00](?:[^\x00]*[^\s\x00])?$")]
Password = Annotated[Required, described(maxLength=MAX_PASSWORD_LENGTH, format="password")]
# A JWT is longer than the tokens Baton mints itself.
AnyToken = Annotated[str, StringConstraints(min_length=1, max_length=4 * MAX_TOKEN_LENGTH,
                                            pattern=NO_NUL)]
SessionId = Annotated[str, described(format="uuid")]


class PasswordGrant(Parameters):
    """RFC 6749 §4.3.2: the user's username and password."""

    model_config = ConfigDict(json_schema_extra=example(
        {"grant_type": "password", "username": "alice", "password": "correct horse"}))

    grant_type: Literal["password"]
    username: Username = Field(description="The username (case-insensitive).")
    password: Password

    @model_validator(mode="after")
    def _storable(self) -> PasswordGrant:
        # The service's own limits (InvalidInput, in its words), before any hashing.
        validate_credentials(self.username, self.password)
        return self


def _pkce(value: str) -> str:
    if not PKCE_VALUE.fullmatch(value):
        raise PydanticCustomError("refused", "must be 43-128 characters of A-Z, a-z, 0-9, '-', "
                                             "'.', '_' and '~' (RFC 7636)")
    return value


def _client_id(value: str | None) -> str | None:
    if value is not None and not CLIENT_ID.fullmatch(value):
        raise PydanticCustomError("refused", "must be 1-255 printable ASCII characters")
    return value


# RFC 7636 §4.1/§4.2: a code_verifier or code_challenge (S256 challenges are 43 characters).
PKCE_VALUE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
Pkce = Annotated[Required, AfterValidator(_pkce),
                 described(minLength=43, maxLength=128, pattern=r"^[A-Za-z0-9._~-]{43,128}$")]
# RFC 6749 §A.1: client_id is VSCHAR; Baton keeps it short.
CLIENT_ID = re.compile(r"[\x20-\x7e]{1,255}")
ClientId = Annotated[OptionalParam, AfterValidator(_client_id),
                     described(maxLength=255, pattern=r"^[\x20-\x7e]+$")]


class RefreshTokenGrant(Parameters):
    """RFC 6749 §6: rotate the session's refresh token (SPEC §5)."""

    model_config = ConfigDict(json_schema_extra=example(
        {"grant_type": "refresh_token", "refresh_token": "Q2xpZW50IHRva2Vu..."}))

    grant_type: Literal["refresh_token"]
    refresh_token: TokenParam = Field(description="The current refresh token of the session.")


class AuthorizationCodeGrant(Parameters):
    """RFC 6749 §4.1.3 with RFC 7636 §4.5: a code from the challenge endpoint (SPEC §13.3)."""

    model_config = ConfigDict(json_schema_extra=example(
        {"grant_type": "authorization_code", "code": "c2lnbmVkIGlu...",
         "code_verifier": "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "client_id": "my-app"}))

    grant_type: Literal["authorization_code"]
    code: TokenParam = Field(description="The authorization code (60 s, single use).")
    code_verifier: Pkce = Field(description="The PKCE verifier whose S256 was the challenge.")
    client_id: ClientId = Field(None, description="Required when the challenge named one.")


TOKEN_REQUEST = Grants("TokenRequest", {"password": PasswordGrant,
                                        "refresh_token": RefreshTokenGrant,
                                        "authorization_code": AuthorizationCodeGrant},
                       example={"grant_type": "password", "username": "alice",
                                "password": "correct horse"})


class RevokeRequest(Parameters):
    """RFC 7009 §2.1."""

    model_config = ConfigDict(json_schema_extra=example(
        {"token": "THE_REFRESH_TOKEN", "token_type_hint": "refresh_token"}))

    token: TokenParam = Field(description="A refresh or access token.")
    token_type_hint: OptionalParam = Field(
        None, description="`refresh_token` or `access_token` (an unknown hint is ignored).")


class IntrospectRequest(Parameters):
    """RFC 7662 §2.1."""

    model_config = ConfigDict(json_schema_extra=example(
        {"token": "ACCESS_TOKEN_TO_CHECK", "token_type_hint": "access_token"}))

    token: AnyToken = Field(description="An access or refresh token of this tenant.")
    token_type_hint: OptionalParam = Field(
        None, description="`access_token` or `refresh_token`; anything else searches both.")


class PasswordResetRequest(Parameters):
    """A reset token from `users reset-link` or the admin API, and the new password."""

    model_config = ConfigDict(json_schema_extra=example(
        {"token": "THE_RESET_TOKEN", "new_password": "a new passphrase"}))

    token: TokenParam = Field(description="From `users reset-link`.")
    new_password: Password = Field(description="Subject to the tenant's password policy.")


class TokenResponse(AnswerModel):
    """RFC 6749 §5.1, with Baton's `refresh_expires_in` and `session_id`."""

    model_config = ConfigDict(json_schema_extra=example({
        "access_token": "eyJhbGciOiJFZERTQSIs...", "token_type": "Bearer", "expires_in": 900,
        "refresh_token": "Q2xpZW50IHRva2Vu...", "refresh_expires_in": 1209600,
        "session_id": SESSION_ID}))

    access_token: str = Field(description="EdDSA-signed JWT; verify with the JWKS, `iss` from "
                                          "the metadata, and `aud` (`baton` unless configured).")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds the access token lives.")
    refresh_token: str = Field(description="Opaque; rotated at each use.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token's expiry.")
    session_id: SessionId = Field(description="The session (token family).")


class Revoked(AnswerModel):
    """RFC 7009 §2.2: an empty object, whether or not the token was known."""

    model_config = ConfigDict(json_schema_extra=example({}))


class PasswordResetDone(AnswerModel):
    """The password is changed and every session of the user revoked."""

    model_config = ConfigDict(json_schema_extra=example({"status": "password_reset"}))

    status: Literal["password_reset"]


class UserInfo(AnswerModel):
    """Who the access token belongs to."""

    model_config = ConfigDict(json_schema_extra=example(
        {"sub": "42", "username": "alice", "tenant": "acme"}))

    sub: str = Field(description="User id.")
    username: str = Field(description="Normalised username.")
    tenant: str = Field(description="Tenant slug.")


class Session(SessionFields):
    """A live session of the caller; `current` marks the one of the presented token."""

    current: bool


class SessionList(AnswerModel):
    """The caller's live sessions, newest first."""

    model_config = ConfigDict(json_schema_extra=example({"sessions": [{
        "id": SESSION_ID, "created_at": "2026-01-05T09:30:00+00:00",
        "last_used_at": "2026-01-05T10:12:41.512004+00:00",
        "expires_at": "2026-02-04T09:30:00+00:00", "user_agent": "Mozilla/5.0",
        "amr": ["pwd", "otp", "mfa"], "auth_time": "2026-01-05T09:30:00+00:00",
        "client_id": "my-app", "current": True}]}))

    sessions: list[Session]


class Jwk(AnswerModel):
    """An Ed25519 public key (RFC 8037), `kid` its RFC 7638 thumbprint."""

    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str
    kid: str
    alg: Literal["EdDSA"]
    use: Literal["sig"]


class JWKS(AnswerModel):
    """RFC 7517 key set: the current key and retired keys still needed for verification."""

    keys: list[Jwk]


class Metadata(AnswerModel):
    """RFC 8414 authorization server metadata."""

    issuer: Url = Field(description="Compare with the token's `iss`.")
    token_endpoint: Url
    revocation_endpoint: Url
    jwks_uri: Url
    userinfo_endpoint: Url
    introspection_endpoint: Url = Field(description="RFC 7662; needs an admin key.")
    grant_types_supported: list[str]
    response_types_supported: list[str]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    authorization_challenge_endpoint: Url = Field(
        description="OAuth 2.0 for First-Party Applications (SPEC §13.3).")
    code_challenge_methods_supported: list[str] = Field(description="`S256` only (RFC 7636).")


class Introspection(AnswerModel):
    """RFC 7662 §2.2: `{"active": false}` alone for anything unknown, expired, revoked or of
    another tenant; the other members for an active token."""

    model_config = ConfigDict(json_schema_extra=example({
        "active": True, "token_type": "access_token", "sub": "42", "username": "alice",
        "tid": 1, "sid": SESSION_ID, "iss": ISSUER, "aud": "baton", "iat": 1767605400,
        "exp": 1767606300, "jti": "Zk3q9w0xV1Rj2c8b"}))

    active: bool
    token_type: Literal["access_token", "refresh_token"] | Absent = None
    sub: str | Absent = Field(None, description="User id.")
    username: str | Absent = Field(None, description="Normalised username.")
    tid: int | Absent = Field(None, description="Tenant id.")
    sid: SessionId | Absent = Field(None, description="Session id.")
    iss: str | Absent = Field(None, description="Issuer.")
    aud: str | list[str] | Absent = Field(None, description="Access tokens only.")
    iat: int | Absent = None
    exp: int | Absent = None
    jti: str | Absent = Field(None, description="Access tokens only.")
    auth_time: int | Absent = Field(None, description="When the session signed in.")
    amr: list[str] | Absent = Field(None, description="RFC 8176 methods of that sign-in.")
