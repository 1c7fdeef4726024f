"""WebAuthn ceremonies (SPEC §13.5; W3C Web Authentication Level 2) through py_webauthn.

The library builds the options Baton sends and verifies what a browser answers: the JSON,
base64url, clientDataJSON, authenticatorData, CBOR, COSE keys, attestation statements and
signatures are all its work, never this module's. What is Baton's here: which relying
party a tenant is, which challenge and credentials go into the options, the refusal of
malformed input in clear words (before anything is looked up), the signature counter rule,
and decoy credentials for a username without passkeys. No database access: the callers
(app.services.accounts.passkeys, app.services.signin.challenge) store state and take locks.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any
from typing import Callable

from webauthn import generate_authentication_options
from webauthn import generate_registration_options
from webauthn import verify_authentication_response
from webauthn import verify_registration_response
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers import options_to_json_dict
from webauthn.helpers import parse_attestation_object
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers import parse_authenticator_data
from webauthn.helpers import parse_client_data_json
from webauthn.helpers import parse_registration_credential_json
from webauthn.helpers.exceptions import InvalidJSONStructure
from webauthn.helpers.structs import AttestationConveyancePreference
from webauthn.helpers.structs import AuthenticationCredential
from webauthn.helpers.structs import AuthenticatorSelectionCriteria
from webauthn.helpers.structs import AuthenticatorTransport
from webauthn.helpers.structs import PublicKeyCredentialDescriptor
from webauthn.helpers.structs import RegistrationCredential
from webauthn.helpers.structs import ResidentKeyRequirement
from webauthn.helpers.structs import UserVerificationRequirement

from app.models.factor import MAX_CREDENTIAL_ID_BYTES
from app.services.errors import InvalidInput
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import rp_id_in_effect

CHALLENGE_BYTES = 32  # WebAuthn §13.4.3: at least 16 random bytes
USER_HANDLE_BYTES = 32  # WebAuthn §14.6.1: random, never the username
CEREMONY_TIMEOUT_MS = 300_000  # the browser's hint: as long as the challenge lives
MAX_REASON_LENGTH = 200


@dataclass(frozen=True)
class RelyingParty:
    """The tenant as a WebAuthn relying party: its RP ID and the app origins it accepts."""

    id: str
    name: str
    origins: tuple[str, ...]


@dataclass(frozen=True)
class StoredCredential:
    """A credential as allowCredentials and excludeCredentials name it."""

    id: bytes
    transports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Registration:
    """A parsed navigator.credentials.create() answer, not verified yet."""

    credential: RegistrationCredential
    challenge: bytes  # what its clientDataJSON says it answers


@dataclass(frozen=True)
class Assertion:
    """A parsed navigator.credentials.get() answer, not verified yet."""

    credential: AuthenticationCredential
    challenge: bytes

    @property
    def credential_id(self) -> bytes:
        return self.credential.raw_id

    @property
    def user_handle(self) -> bytes | None:
        return self.credential.response.user_handle


@dataclass(frozen=True)
class NewCredential:
    """A verified registration: what the factor row keeps."""

    id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]


@dataclass(frozen=True)
class VerifiedAssertion:
    sign_count: int
    user_verified: bool


class Rejected(Exception):
    """A well-formed answer that does not verify; `reason` is for the log (and for the
    registering user), never a secret."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:MAX_REASON_LENGTH]


def relying_party(tenant: TenantInfo) -> RelyingParty:
    """`--webauthn-rp-id`, or else the host of BATON_BASE_URL (the issuer's host)."""
    rp_id = rp_id_in_effect(tenant.webauthn_rp_id, tenant.issuer)
    return RelyingParty(rp_id, tenant.name or tenant.slug, tenant.webauthn_origins)


def require_set_up(rp: RelyingParty) -> None:
    """Passkeys need an RP ID and at least one app origin to verify against; InvalidInput
    otherwise."""
    if not rp.origins:
        raise InvalidInput("passkeys are not set up for this tenant: it has no webauthn "
                           "origin (flask tenants update --webauthn-origin URL)")
    if not rp.id:
        raise InvalidInput("passkeys are not set up for this tenant: it has no webauthn "
                           "rp id (flask tenants update --webauthn-rp-id HOST)")


def new_challenge() -> bytes:
    return secrets.token_bytes(CHALLENGE_BYTES)


def new_user_handle() -> bytes:
    return secrets.token_bytes(USER_HANDLE_BYTES)


def challenge_digest(challenge: bytes) -> bytes:
    """A challenge is stored only as this digest (like every other single-use value)."""
    return hashlib.sha256(challenge).digest()


# -- options (what the browser gets) ---------------------------------------------------------

def _descriptors(credentials: list[StoredCredential]) -> list[PublicKeyCredentialDescriptor]:
    known = {t.value for t in AuthenticatorTransport}
    return [PublicKeyCredentialDescriptor(
        id=c.id, transports=[AuthenticatorTransport(t) for t in c.transports if t in known]
        or None) for c in credentials]


def creation_options(rp: RelyingParty, *, user_handle: bytes, username: str, challenge: bytes,
                     exclude: list[StoredCredential]) -> dict[str, Any]:
    """PublicKeyCredentialCreationOptions JSON: a resident key and user verification
    preferred, no attestation asked for, the user's passkeys excluded."""
    options = generate_registration_options(
        rp_id=rp.id, rp_name=rp.name, user_name=username, user_id=user_handle,
        challenge=challenge, timeout=CEREMONY_TIMEOUT_MS,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED),
        exclude_credentials=_descriptors(exclude))
    return options_to_json_dict(options)


def request_options(rp: RelyingParty, *, challenge: bytes, allow: list[StoredCredential],
                    user_verification: bool = False) -> dict[str, Any]:
    """PublicKeyCredentialRequestOptions JSON; an empty `allow` asks for a discoverable
    credential. User verification is preferred, or required (`user_verification`)."""
    options = generate_authentication_options(
        rp_id=rp.id, challenge=challenge, timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=_descriptors(allow),
        user_verification=(UserVerificationRequirement.REQUIRED if user_verification
                           else UserVerificationRequirement.PREFERRED))
    return options_to_json_dict(options)


# -- parsing (malformed input: InvalidInput, before anything is looked up) -------------------

def _parsed(field: str, what: str, parse: Callable[[Any], Any], value: Any) -> Any:
    """One of the library's parsers; whatever it refuses is the client's malformed input."""
    try:
        return parse(value)
    except InvalidJSONStructure as exc:  # the library's own words name what is missing
        raise InvalidInput(f"{field}: {what} is malformed ({exc})") from None
    except Exception:  # hostile bytes meet base64, UTF-8, JSON and CBOR decoders
        raise InvalidInput(f"{field}: {what} is malformed") from None


BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
BINARY_MEMBERS = (("rawId",), ("response", "clientDataJSON"), ("response", "attestationObject"),
                  ("response", "authenticatorData"), ("response", "signature"),
                  ("response", "userHandle"))


def _credential_json(field: str, text: str) -> dict[str, Any]:
    """The credential JSON as an object whose binary members are base64url: Python's
    decoder would skip other characters silently (the library's parsers then check the
    structure)."""
    try:
        credential = json.loads(text)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{field}: the credential JSON is malformed (not JSON)") from None
    if not isinstance(credential, dict):
        raise InvalidInput(f"{field}: the credential JSON is malformed (not an object)")
    for path in BINARY_MEMBERS:
        value: Any = credential
        for name in path:
            value = value.get(name) if isinstance(value, dict) else None
        if isinstance(value, str) and not BASE64URL.fullmatch(value):
            raise InvalidInput(f"{field}: {'.'.join(path)} is not base64url")
    return credential


def _check_id(field: str, raw_id: bytes, given_id: str) -> None:
    if not 1 <= len(raw_id) <= MAX_CREDENTIAL_ID_BYTES:
        raise InvalidInput(f"{field}: rawId must be 1 to {MAX_CREDENTIAL_ID_BYTES} bytes")
    if bytes_to_base64url(raw_id) != given_id:
        raise InvalidInput(f"{field}: id and rawId differ")


def parse_registration(text: str, field: str = "credential") -> Registration:
    """The credential JSON of navigator.credentials.create(), as a string."""
    credential = _parsed(field, "the credential JSON", parse_registration_credential_json,
                         _credential_json(field, text))
    _check_id(field, credential.raw_id, credential.id)
    client_data = _parsed(field, "clientDataJSON", parse_client_data_json,
                          credential.response.client_data_json)
    _parsed(field, "attestationObject", parse_attestation_object,
            credential.response.attestation_object)
    return Registration(credential, client_data.challenge)


def parse_assertion(text: str, field: str = "webauthn_response") -> Assertion:
    """The credential JSON of navigator.credentials.get(), as a string."""
    credential = _parsed(field, "the credential JSON", parse_authentication_credential_json,
                         _credential_json(field, text))
    _check_id(field, credential.raw_id, credential.id)
    client_data = _parsed(field, "clientDataJSON", parse_client_data_json,
                          credential.response.client_data_json)
    _parsed(field, "authenticatorData", parse_authenticator_data,
            credential.response.authenticator_data)
    return Assertion(credential, client_data.challenge)


# -- verification ------------------------------------------------------------------------------

def verify_registration(rp: RelyingParty, registration: Registration) -> NewCredential:
    """Origin (one of the tenant's), RP ID hash, challenge (the caller found it by its
    digest), user presence, the public key's algorithm and the attestation statement;
    Rejected otherwise. User verification is preferred, not required."""
    try:
        verified = verify_registration_response(
            credential=registration.credential, expected_challenge=registration.challenge,
            expected_rp_id=rp.id, expected_origin=list(rp.origins))
    except Exception as exc:  # every refusal of the library, whatever its type
        raise Rejected(str(exc) or type(exc).__name__) from None
    # WebAuthn §7.1: the credential id is the one in the attested credential data, which the
    # browser also sends as rawId; the library compares neither, nor bounds its length.
    if not hmac.compare_digest(verified.credential_id, registration.credential.raw_id):
        raise Rejected("the attested credential id is not the rawId")
    transports = tuple(t.value for t in registration.credential.response.transports or ())
    return NewCredential(verified.credential_id, verified.credential_public_key,
                         verified.sign_count, transports)


def verify_assertion(rp: RelyingParty, assertion: Assertion, expected_digest: bytes,
                     public_key: bytes, *, require_user_verification: bool
                     ) -> VerifiedAssertion:
    """The challenge (against the stored digest), origin, RP ID hash, user presence (and
    verification when required) and the signature; Rejected otherwise.

    The signature counter is the caller's to judge (`counter_went_backwards`): the library
    gets 0 as the stored count, which turns its own counter check off, so that a counter
    that went backwards is told apart from every other refusal, and only once the
    signature has verified (a forged answer must not raise a clone alarm)."""
    if not hmac.compare_digest(challenge_digest(assertion.challenge), expected_digest):
        raise Rejected("not the challenge of this auth_session")
    try:
        verified = verify_authentication_response(
            credential=assertion.credential, expected_challenge=assertion.challenge,
            expected_rp_id=rp.id, expected_origin=list(rp.origins),
            credential_public_key=public_key, credential_current_sign_count=0,
            require_user_verification=require_user_verification)
    except Exception as exc:  # every refusal of the library, whatever its type
        raise Rejected(str(exc) or type(exc).__name__) from None
    return VerifiedAssertion(verified.new_sign_count, verified.user_verified)


def counter_went_backwards(stored: int, received: int) -> bool:
    """WebAuthn §6.1.1: if either count is non-zero, the new one must be greater than the
    stored one; otherwise the authenticator may have been cloned. (Authenticators without a
    counter always send 0, and 0 after 0 is fine.)"""
    return (stored != 0 or received != 0) and received <= stored


# -- decoys: no oracle for which usernames have passkeys (docs/design.md) ---------------------

DECOY_ID_LENGTHS = (16, 20, 32, 32, 32, 64)
DECOY_TRANSPORTS = (("internal",), ("hybrid", "internal"), ("internal",), ("usb",),
                    ("nfc", "usb"))


def decoy_credentials(tenant: TenantInfo, username: str) -> list[StoredCredential]:
    """allowCredentials for a username without passkeys, or without a user: one or two
    credentials of plausible lengths and transports, derived from the tenant's secret decoy
    key and the username, so the same username always gets the same ones."""
    def prf(*parts: bytes) -> bytes:
        return hmac.new(tenant.webauthn_decoy_key, b"\x00".join(
            (b"baton webauthn decoy v1", username.encode("utf-8"), *parts)),
            hashlib.sha512).digest()

    count = 2 if prf(b"count")[0] < 64 else 1  # one decoy user in four has two passkeys
    decoys = []
    for index in range(count):
        shape = prf(b"shape", bytes([index]))
        length = DECOY_ID_LENGTHS[shape[0] % len(DECOY_ID_LENGTHS)]
        decoys.append(StoredCredential(prf(b"id", bytes([index]))[:length],
                                       DECOY_TRANSPORTS[shape[1] % len(DECOY_TRANSPORTS)]))
    return decoys
