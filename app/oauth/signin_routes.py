"""Sign-in beyond a bare password (SPEC §13): the Authorization Challenge Endpoint and the
user's own second factors. Views parse strictly, call one service, shape the answer."""
from __future__ import annotations

from dataclasses import replace

from flask.typing import ResponseReturnValue

from app.errors import InvalidRequest
from app.http.answers import NO_CONTENT
from app.http.answers import RETRY_AFTER
from app.http.answers import json_answer
from app.http.answers import no_content
from app.http.answers import ok
from app.http.answers import refused
from app.http.inputs import FormOrJson
from app.http.inputs import model_example
from app.http.models import Error
from app.http.operations import BEARER
from app.http.operations import PathParameter
from app.http.operations import operation
from app.http.operations import path_parameter
from app.http.shared import FactorList
from app.http.shared import factor_list
from app.http.web import client_address
from app.http.web import utcnow
from app.oauth import bp
from app.oauth.models import PKCE_VALUE
from app.oauth.routes import bearer_token
from app.oauth.signin_models import ChallengeDone
from app.oauth.signin_models import ChallengeRequest
from app.oauth.signin_models import CreationOptions
from app.oauth.signin_models import EnrolmentOffered
from app.oauth.signin_models import FactorConfirmed
from app.oauth.signin_models import InsufficientAuthorization
from app.oauth.signin_models import NoParameters
from app.oauth.signin_models import PasskeyRegistered
from app.oauth.signin_models import PasskeyRegisterRequest
from app.oauth.signin_models import RecoveryCodes
from app.oauth.signin_models import TotpConfirmRequest
from app.oauth.signin_models import TotpEnrolment
from app.oauth.signin_models import TotpEnrolRequest
from app.services.accounts import factors
from app.services.accounts import passkeys
from app.services.accounts.users import validate_credentials
from app.services.signin import challenge

ANSWERS = ("otp", "recovery_code", "webauthn_response", "enroll")
MAX_FACTOR_ID = 2**63 - 1
STEP_UP = refused(401, "insufficient_user_authentication",
                  "The access token's sign-in (`auth_time`) is older than the tenant's "
                  "step_up_max_age (RFC 9470): sign in again.",
                  {"WWW-Authenticate": 'Bearer error="insufficient_user_authentication", '
                                       'error_description="…", max_age=900'})


def _factor_id(raw: str) -> int:
    """A factor id from the path; 0 (which names no factor) for anything malformed, so that
    the access token is still checked first (401 before 404)."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_FACTOR_ID:
        return 0
    return int(raw)


path_parameter(PathParameter(
    "factor_id", "A second factor's id (from `GET …/mfa`).",
    {"type": "string", "pattern": r"^[1-9][0-9]{0,18}$"}, "7",
    (refused(404, "not_found", "No such factor of the caller."),), convert=_factor_id))


@bp.post("/authorize-challenge")
@operation(
    "Sign in step by step (OAuth 2.0 for First-Party Applications): the password and a PKCE "
    "challenge, then a second factor if needed; ends with an authorization code.",
    tag="sign-in", body=FormOrJson(ChallengeRequest),
    # One 200 of two shapes (a later answer of a status replaces an earlier one).
    returns=ok(ChallengeDone | EnrolmentOffered,
               "Signed in: redeem the code at the token endpoint "
               "(`grant_type=authorization_code`); or, after `enroll=totp`, the factor to "
               "enrol: answer with its code.", example=model_example(ChallengeDone)),
    refusals=(
        replace(refused(400, "insufficient_authorization",
                        "A second factor is needed (or must be enrolled: `enroll`); also "
                        "invalid_grant (wrong password or answer: one body), invalid_session "
                        "(unknown, used, ended or expired auth_session) and invalid_request.",
                        model=InsufficientAuthorization | Error),
                example=model_example(InsufficientAuthorization)),
        refused(429, "slow_down", "Too many failed logins, or wrong second-factor answers of "
                                  "the user, in the window.", RETRY_AFTER)))
def authorize_challenge(tenant: str, body: ChallengeRequest) -> ResponseReturnValue:
    """draft-ietf-oauth-first-party-apps §5: a first request (password and the PKCE
    challenge, or `passkey=1` and the PKCE challenge) or a follow-up (auth_session and one
    answer)."""
    if body.auth_session is not None:
        result = challenge.answer(tenant, _follow_up(body), now=utcnow(),
                                  client_address=client_address())
    elif body.passkey is not None:
        challenge.start_passkey(tenant, _passkey_start(body), now=utcnow(),
                                client_address=client_address())
    else:
        result = challenge.start(tenant, _first_request(body), now=utcnow(),
                                 client_address=client_address())
    if isinstance(result, challenge.EnrolmentOffered):
        return json_answer(EnrolmentOffered(auth_session=result.auth_session,
                                            secret=result.secret,
                                            otpauth_uri=result.otpauth_uri))
    done: dict = {"authorization_code": result.authorization_code}
    if result.recovery_codes is not None:
        done["recovery_codes"] = result.recovery_codes
    return json_answer(ChallengeDone.model_validate(done))


def _first_request(body: ChallengeRequest) -> challenge.FirstRequest:
    for name in ("username", "password"):
        if not getattr(body, name):
            raise InvalidRequest(f"Missing parameter {name!r}.")
    assert body.username and body.password
    code_challenge = _code_challenge(body)
    validate_credentials(body.username, body.password)  # length limits before any hashing
    return challenge.FirstRequest(body.username, body.password, code_challenge, body.client_id)


def _passkey_start(body: ChallengeRequest) -> challenge.PasskeyStart:
    """`passkey=1` (SPEC §13.5): the PKCE challenge, a username or none, never a password."""
    if body.password is not None:
        raise InvalidRequest("A passwordless start (passkey=1) takes no 'password'.")
    return challenge.PasskeyStart(_code_challenge(body), body.username, body.client_id)


def _code_challenge(body: ChallengeRequest) -> str:
    """RFC 7636 §4.2-4.4.1: an S256 challenge of the right format, or invalid_request."""
    if not body.code_challenge:
        raise InvalidRequest("Missing parameter 'code_challenge'.")
    if not PKCE_VALUE.fullmatch(body.code_challenge):
        raise InvalidRequest("Parameter 'code_challenge' must be 43-128 characters of A-Z, "
                             "a-z, 0-9, '-', '.', '_' and '~' (RFC 7636).")
    if body.code_challenge_method != "S256":  # RFC 7636 §4.4.1: none means `plain`: refused
        raise InvalidRequest("Parameter 'code_challenge_method' must be S256.")
    return body.code_challenge


def _follow_up(body: ChallengeRequest) -> challenge.Answer:
    given = [name for name in ANSWERS if getattr(body, name) is not None]
    if len(given) != 1:
        raise InvalidRequest("Give exactly one of 'otp', 'recovery_code', 'webauthn_response' "
                             "and 'enroll' with 'auth_session'.")
    assert body.auth_session is not None
    return challenge.Answer(body.auth_session, **{given[0]: getattr(body, given[0])})


# -- the user's own factors (SPEC §13.2): a Bearer access token ------------------------------

@bp.get("/mfa")
@operation("The caller's second factors and recovery codes left (never a secret).",
           tag="mfa", security=BEARER, returns=ok(FactorList, "The factors."))
def list_factors(tenant: str) -> ResponseReturnValue:
    return json_answer(factor_list(factors.list_own(tenant, bearer_token(), utcnow())))


@bp.post("/mfa/totp")
@operation("Enrol a TOTP factor (pending until confirmed; gone after 10 minutes). Needs a "
           "recent sign-in.", tag="mfa", security=BEARER, body=FormOrJson(TotpEnrolRequest),
           returns=ok(TotpEnrolment, "The pending factor.", status=201), refusals=(STEP_UP,))
def enrol_totp(tenant: str, body: TotpEnrolRequest) -> ResponseReturnValue:
    enrolment = factors.enrol_totp(tenant, bearer_token(), body.name, utcnow())
    return json_answer(TotpEnrolment(id=str(enrolment.id), secret=enrolment.secret,
                                     otpauth_uri=enrolment.otpauth_uri), 201)


@bp.post("/mfa/totp/<factor_id>/confirm")
@operation("Confirm a pending TOTP factor with a code; the first second factor brings 10 "
           "recovery codes. Needs a recent sign-in.", tag="mfa", security=BEARER,
           body=FormOrJson(TotpConfirmRequest),
           returns=ok(FactorConfirmed, "The factor is usable."),
           refusals=(STEP_UP, refused(400, "invalid_grant", "A wrong code.")))
def confirm_totp(tenant: str, factor_id: int, body: TotpConfirmRequest) -> ResponseReturnValue:
    confirmed = factors.confirm_totp(tenant, bearer_token(), factor_id, body.code, utcnow())
    answer: dict = {"id": str(confirmed.id)}
    if confirmed.recovery_codes is not None:
        answer["recovery_codes"] = confirmed.recovery_codes
    return json_answer(FactorConfirmed.model_validate(answer))


@bp.delete("/mfa/<factor_id>")
@operation("Remove one of the caller's factors; the last one takes the recovery codes. "
           "Needs a recent sign-in.", tag="mfa", security=BEARER, returns=NO_CONTENT,
           refusals=(STEP_UP,))
def delete_factor(tenant: str, factor_id: int) -> ResponseReturnValue:
    factors.delete_own(tenant, bearer_token(), factor_id, utcnow())
    return no_content()


@bp.post("/mfa/recovery-codes")
@operation("A new set of recovery codes (the old set dies). Needs a recent sign-in and a "
           "second factor.", tag="mfa", security=BEARER,
           body=FormOrJson(NoParameters),
           returns=ok(RecoveryCodes, "10 codes, shown once."), refusals=(STEP_UP,))
def regenerate_recovery_codes(tenant: str, body: NoParameters) -> ResponseReturnValue:
    codes = factors.regenerate_recovery_codes(tenant, bearer_token(), utcnow())
    return json_answer(RecoveryCodes(recovery_codes=codes))


# -- passkeys (SPEC §13.5): registration, in two requests ------------------------------------

@bp.post("/mfa/passkeys/options")
@operation("Start registering a passkey: PublicKeyCredentialCreationOptions JSON for "
           "`navigator.credentials.create()` (its challenge is single use, 300 s; the "
           "caller's passkeys excluded). Needs a recent sign-in.", tag="mfa", security=BEARER,
           body=FormOrJson(NoParameters),
           returns=ok(CreationOptions, "The creation options."),
           refusals=(STEP_UP,))
def passkey_options(tenant: str, body: NoParameters) -> ResponseReturnValue:
    options = passkeys.registration_options(tenant, bearer_token(), utcnow())
    return json_answer(CreationOptions.model_validate(options))


@bp.post("/mfa/passkeys")
@operation("Register a passkey: the credential `navigator.credentials.create()` produced, "
           "as a JSON string. Usable at once; the first second factor brings 10 recovery "
           "codes. Needs a recent sign-in.", tag="mfa", security=BEARER,
           body=FormOrJson(PasskeyRegisterRequest),
           returns=ok(PasskeyRegistered, "The passkey.", status=201),
           refusals=(STEP_UP, refused(400, "invalid_grant",
                                      "The passkey does not verify (its challenge unknown, "
                                      "used or expired, another origin or RP ID...): the "
                                      "description says why; invalid_request for a "
                                      "malformed credential.")))
def register_passkey(tenant: str, body: PasskeyRegisterRequest) -> ResponseReturnValue:
    registered = passkeys.register(tenant, bearer_token(), body.credential, body.name, utcnow())
    factor = registered.factor
    answer: dict = {"id": str(factor.id), "type": factor.type, "name": factor.name,
                    "created_at": factor.created_at, "last_used_at": factor.last_used_at}
    if registered.recovery_codes is not None:
        answer["recovery_codes"] = registered.recovery_codes
    return json_answer(PasskeyRegistered.model_validate(answer), 201)
