"""Request and answer models of sign-in beyond a bare password (SPEC §13): the Authorization
Challenge Endpoint and the user's own second factors.

Requests are RFC 6749 parameters (a form or a JSON object of strings), as at the token
endpoint. The challenge request is one model for both of its kinds: the view tells a first
request (credentials and the PKCE challenge) from a follow-up (`auth_session` and one answer).
"""
from __future__ import annotations

from typing import Annotated
from typing import Literal

from pydantic import ConfigDict
from pydantic import Field
from pydantic import StringConstraints

from app.http.models import MAX_TOKEN_LENGTH
from app.http.models import NO_NUL
from app.http.models import Absent
from app.http.models import AnswerModel
from app.http.models import Error
from app.http.models import OptionalParam
from app.http.models import Parameters
from app.http.models import Required
from app.http.models import Timestamp
from app.http.models import example
from app.oauth.models import ClientId
from app.oauth.models import Password
from app.oauth.models import Username

MAX_ANSWER_LENGTH = 64  # an otp, a recovery code, "totp"
MAX_WEBAUTHN_LENGTH = 8192  # the credential JSON a browser produces, as a string
Answer = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ANSWER_LENGTH,
                                          pattern=NO_NUL)]
OptionalAnswer = Annotated[Answer | Absent, Field(None)]
AuthSession = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_LENGTH,
                                               pattern=NO_NUL)]
WebAuthnJson = Annotated[str, StringConstraints(min_length=1, max_length=MAX_WEBAUTHN_LENGTH,
                                                pattern=NO_NUL)]


class ChallengeRequest(Parameters):
    """draft-ietf-oauth-first-party-apps §5.1. A first request carries the credentials and
    the PKCE challenge (S256 only); a follow-up carries `auth_session` and exactly one of
    `otp`, `recovery_code`, `webauthn_response` or `enroll`."""

    model_config = ConfigDict(json_schema_extra=example(
        {"username": "alice", "password": "correct horse",
         "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
         "code_challenge_method": "S256", "client_id": "my-app"}))

    username: Annotated[Username | Absent, Field(None)]
    password: Annotated[Password | Absent, Field(None)]
    code_challenge: OptionalParam = Field(
        None, description="BASE64URL(SHA-256(code_verifier)), 43 characters (RFC 7636).")
    code_challenge_method: Annotated[Literal["S256"] | Absent, Field(None)] = Field(
        None, description="`S256`; anything else (or nothing: `plain`) is refused.")
    client_id: ClientId = Field(None, description="The tenant's app (kept on the session).")
    passkey: Annotated[Literal["1"] | Absent, Field(None)] = Field(
        None, description="`1`: sign in with a passkey alone (SPEC §13.5), with `username` or "
                          "without it (a discoverable passkey), and no password.")
    auth_session: Annotated[AuthSession | Absent, Field(None)] = Field(
        None, description="A follow-up: the auth_session of the 400 insufficient_authorization.")
    otp: OptionalAnswer = Field(None, description="A TOTP code (6 digits).")
    recovery_code: OptionalAnswer = Field(None, description="One of the recovery codes.")
    webauthn_response: Annotated[WebAuthnJson | Absent, Field(None)] = Field(
        None, description="The credential JSON the browser produced, as a string.")
    enroll: Annotated[Literal["totp"] | Absent, Field(None)] = Field(
        None, description="`totp`: enrol a factor inside the flow (tenant policy "
                          "mfa=required, for a user without one).")


class ChallengeDone(AnswerModel):
    """The sign-in is complete: a code for the token endpoint (60 s, single use)."""

    model_config = ConfigDict(json_schema_extra=example(
        {"authorization_code": "c2lnbmVkIGlu..."}))

    authorization_code: str
    recovery_codes: list[str] | Absent = Field(
        None, description="After enrolling inside the flow: 10 codes, shown once.")


class EnrolmentOffered(AnswerModel):
    """`enroll=totp`: a TOTP factor to add to an authenticator app; answer with its code."""

    model_config = ConfigDict(json_schema_extra=example(
        {"auth_session": "cGVuZGluZyBzaWduLWlu...", "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
         "otpauth_uri": "otpauth://totp/Acme:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
                        "&issuer=Acme"}))

    auth_session: str
    secret: str = Field(description="Base32, 160 bits; shown once.")
    otpauth_uri: str


# -- WebAuthn (SPEC §13.5): the options JSON a browser's navigator.credentials takes ---------
# Member names are WebAuthn's own (camelCase), so a browser takes the JSON as it comes.

Base64Url = Annotated[str, Field(description="base64url, no padding.")]


class CredentialDescriptor(AnswerModel):
    """PublicKeyCredentialDescriptorJSON: a passkey allowed (or excluded) by its id."""

    id: Base64Url
    type: Literal["public-key"]
    transports: list[str] | Absent = Field(None, description="Hints: `internal`, `hybrid`, "
                                                              "`usb`, `nfc`, `ble`.")


class RelyingPartyEntity(AnswerModel):
    id: str = Field(description="The RP ID: the tenant's `--webauthn-rp-id`, or the host of "
                                "BATON_BASE_URL.")
    name: str


class UserEntity(AnswerModel):
    id: Base64Url = Field(description="The user handle: 32 random bytes, the same for every "
                                      "passkey of the user.")
    name: str
    displayName: str


class CredentialParameters(AnswerModel):
    type: Literal["public-key"]
    alg: int = Field(description="COSE algorithm: -8 EdDSA, -7 ES256, -257 RS256.")


class AuthenticatorSelection(AnswerModel):
    residentKey: str
    requireResidentKey: bool | Absent = None
    userVerification: str
    authenticatorAttachment: str | Absent = None


class CreationOptions(AnswerModel):
    """PublicKeyCredentialCreationOptionsJSON (WebAuthn Level 3 §5.1): pass it to
    `PublicKeyCredential.parseCreationOptionsFromJSON`, then `navigator.credentials.create`.
    The challenge is single use and good for 300 s."""

    model_config = ConfigDict(json_schema_extra=example(
        {"rp": {"name": "Acme", "id": "example.com"},
         "user": {"id": "3q2-7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "name": "alice",
                  "displayName": "alice"},
         "challenge": "q8ArPOGUsVsuqrPwNNLwlnKkRHEwvh2FD3cHvkJpcJ4",
         "pubKeyCredParams": [{"type": "public-key", "alg": -8},
                              {"type": "public-key", "alg": -7},
                              {"type": "public-key", "alg": -257}],
         "timeout": 300000, "excludeCredentials": [],
         "authenticatorSelection": {"residentKey": "preferred", "requireResidentKey": False,
                                    "userVerification": "preferred"},
         "attestation": "none"}))

    rp: RelyingPartyEntity
    user: UserEntity
    challenge: Base64Url
    pubKeyCredParams: list[CredentialParameters]
    timeout: int = Field(description="Milliseconds (a hint to the browser).")
    excludeCredentials: list[CredentialDescriptor] = Field(
        description="The user's passkeys: an authenticator that holds one declines.")
    authenticatorSelection: AuthenticatorSelection
    attestation: str
    hints: list[str] | Absent = None


class RequestOptions(AnswerModel):
    """PublicKeyCredentialRequestOptionsJSON (WebAuthn Level 3 §5.1): pass it to
    `PublicKeyCredential.parseRequestOptionsFromJSON`, then `navigator.credentials.get`."""

    model_config = ConfigDict(json_schema_extra=example(
        {"challenge": "Zm9yIHRoZSBhdXRoX3Nlc3Npb24gb25seS4uLg", "timeout": 300000,
         "rpId": "example.com",
         "allowCredentials": [{"id": "MuT6Zl6KX1e9q91LE14JDh6ZOMIDR7VGjqjh4qLT8Tc",
                               "type": "public-key", "transports": ["internal"]}],
         "userVerification": "preferred"}))

    challenge: Base64Url
    timeout: int = Field(description="Milliseconds (a hint to the browser).")
    rpId: str
    allowCredentials: list[CredentialDescriptor] = Field(
        description="The passkeys that may answer; empty: a discoverable one (no username).")
    userVerification: str


class PasskeyRegisterRequest(Parameters):
    """The credential JSON `navigator.credentials.create()` produced (`credential.toJSON()`,
    stringified), and a name for the passkey (optional)."""

    model_config = ConfigDict(json_schema_extra=example(
        {"credential": '{"id": "MuT6Zl6K...", "rawId": "MuT6Zl6K...", "type": "public-key", '
                       '"response": {"clientDataJSON": "eyJ0eXBl...", "attestationObject": '
                       '"o2NmbXRk..."}}', "name": "laptop"}))

    credential: WebAuthnJson = Field(description="The credential JSON, as a string.")
    name: OptionalParam = Field(None, description="Shown in the factor list; 100 characters.")


class PasskeyRegistered(AnswerModel):
    """The new passkey, usable at once; the user's first second factor brings 10 recovery
    codes."""

    model_config = ConfigDict(json_schema_extra=example(
        {"id": "8", "type": "passkey", "name": "laptop",
         "created_at": "2026-01-05T09:30:00+00:00", "last_used_at": None}))

    id: str = Field(description="Factor id.")
    type: Literal["passkey"]
    name: str
    created_at: Timestamp
    last_used_at: Timestamp | None
    recovery_codes: list[str] | Absent = Field(None, description="Shown once.")


class InsufficientAuthorization(Error):
    """400 `insufficient_authorization`: a second factor is needed (or must be enrolled)."""

    model_config = ConfigDict(json_schema_extra=example(
        {"error": "insufficient_authorization", "error_description": "A second factor is "
         "required.", "auth_session": "cGVuZGluZyBzaWduLWlu...",
         "factors": ["totp", "recovery_code"]}))

    auth_session: str = Field(description="Answer with it (300 s, at most one code).")
    factors: list[Literal["totp", "passkey", "recovery_code"]]
    enroll: list[Literal["totp"]] | Absent = Field(
        None, description="Present under mfa=required when the user has nothing to answer "
                          "with: enrol first.")
    webauthn: RequestOptions | Absent = Field(
        None, description="PublicKeyCredentialRequestOptions JSON, when a passkey can answer: "
                          "answer with `webauthn_response`.")


class NoParameters(Parameters):
    """No parameters are needed (an empty body, or none)."""

    model_config = ConfigDict(json_schema_extra=example({}))


class TotpEnrolRequest(Parameters):
    """A name for the new factor (optional)."""

    model_config = ConfigDict(json_schema_extra=example({"name": "phone"}))

    name: OptionalParam = Field(None, description="Shown in the factor list; 100 characters.")


class TotpEnrolment(AnswerModel):
    """A pending TOTP factor: confirm it with a code within 10 minutes."""

    model_config = ConfigDict(json_schema_extra=example(
        {"id": "7", "secret": "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
         "otpauth_uri": "otpauth://totp/Acme:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
                        "&issuer=Acme"}))

    id: str = Field(description="Factor id.")
    secret: str = Field(description="Base32, 160 bits; shown once.")
    otpauth_uri: str = Field(description="For an authenticator app (as a QR code).")


class TotpConfirmRequest(Parameters):
    """The factor's current code."""

    model_config = ConfigDict(json_schema_extra=example({"code": "492039"}))

    code: Annotated[Required, StringConstraints(max_length=MAX_ANSWER_LENGTH)]


class FactorConfirmed(AnswerModel):
    """The factor is usable; the user's first second factor brings 10 recovery codes."""

    model_config = ConfigDict(json_schema_extra=example({"id": "7"}))

    id: str
    recovery_codes: list[str] | Absent = Field(None, description="Shown once.")


class RecoveryCodes(AnswerModel):
    """A new set of 10 single-use recovery codes; the old set is dead."""

    model_config = ConfigDict(json_schema_extra=example(
        {"recovery_codes": ["abcd-efgh-ijkl-mnop"]}))

    recovery_codes: list[str]
