"""Sign-in beyond a bare password (SPEC §13): the Authorization Challenge Endpoint and the
user's own second factors. Views parse strictly, call one service, shape the answer."""
from __future__ import annotations

from flask import Response
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue

from app.errors import InvalidRequest
from app.oauth import bp
from app.oauth.params import MAX_TOKEN_LENGTH
from app.oauth.params import body_params
from app.oauth.params import bounded
from app.oauth.params import client_id
from app.oauth.params import pkce_value
from app.oauth.params import require
from app.oauth.responses import NO_STORE
from app.oauth.responses import factors_json
from app.oauth.routes import bearer_token
from app.services.accounts import factors
from app.services.accounts.users import validate_credentials
from app.services.signin import challenge
from app.web import client_address
from app.web import utcnow

ANSWERS = ("otp", "recovery_code", "webauthn_response", "enroll")
MAX_ANSWER_LENGTH = 64  # an otp, a recovery code or "totp"
MAX_FACTOR_ID = 2**63 - 1


def _answer(body: dict, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers.update(NO_STORE)
    return response


@bp.post("/authorize-challenge")
def authorize_challenge(tenant: str) -> ResponseReturnValue:
    """draft-ietf-oauth-first-party-apps §5: a first request (password and the PKCE
    challenge) or a follow-up (auth_session and one answer)."""
    params = body_params(request)
    if "auth_session" in params:
        result = challenge.answer(tenant, _follow_up(params), now=utcnow(),
                                  client_address=client_address())
    else:
        result = challenge.start(tenant, _first_request(params), now=utcnow(),
                                 client_address=client_address())
    if isinstance(result, challenge.EnrolmentOffered):
        return _answer({"auth_session": result.auth_session, "secret": result.secret,
                        "otpauth_uri": result.otpauth_uri})
    body: dict = {"authorization_code": result.authorization_code}
    if result.recovery_codes is not None:
        body["recovery_codes"] = result.recovery_codes
    return _answer(body)


def _first_request(params: dict[str, str]) -> challenge.FirstRequest:
    username, password = require(params, "username"), require(params, "password")
    code_challenge = pkce_value(params, "code_challenge")
    method = params.get("code_challenge_method")
    if method != "S256":  # RFC 7636 §4.4.1: a missing method means `plain`, refused too
        raise InvalidRequest("Parameter 'code_challenge_method' must be S256.")
    validate_credentials(username, password)  # length limits before any hashing
    return challenge.FirstRequest(username, password, code_challenge, client_id(params))


def _follow_up(params: dict[str, str]) -> challenge.Answer:
    auth_session = bounded(require(params, "auth_session"), "auth_session", MAX_TOKEN_LENGTH)
    given = [name for name in ANSWERS if name in params]
    if len(given) != 1:
        raise InvalidRequest("Give exactly one of 'otp', 'recovery_code', 'webauthn_response' "
                             "and 'enroll' with 'auth_session'.")
    name = given[0]
    value = bounded(require(params, name), name, MAX_ANSWER_LENGTH)
    if name == "webauthn_response":
        raise InvalidRequest("This tenant has no passkeys to answer with.")
    return challenge.Answer(auth_session, **{name: value})


# -- the user's own factors (SPEC §13.2): a Bearer access token ------------------------------

def _factor_id(raw: str) -> int:
    """A factor id from the path; 0 (which names no factor) for anything malformed, so that
    the access token is still checked first (401 before 404)."""
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_FACTOR_ID:
        return 0
    return int(raw)


@bp.get("/mfa")
def list_factors(tenant: str) -> ResponseReturnValue:
    return _answer(factors_json(factors.list_own(tenant, bearer_token(), utcnow())))


@bp.post("/mfa/totp")
def enrol_totp(tenant: str) -> ResponseReturnValue:
    """A pending TOTP factor: confirm it with a code within 10 minutes."""
    token = bearer_token()
    name = body_params(request).get("name")
    enrolment = factors.enrol_totp(tenant, token, name, utcnow())
    return _answer({"id": str(enrolment.id), "secret": enrolment.secret,
                    "otpauth_uri": enrolment.otpauth_uri}, 201)


@bp.post("/mfa/totp/<factor_id>/confirm")
def confirm_totp(tenant: str, factor_id: str) -> ResponseReturnValue:
    token = bearer_token()
    code = bounded(require(body_params(request), "code"), "code", MAX_ANSWER_LENGTH)
    confirmed = factors.confirm_totp(tenant, token, _factor_id(factor_id), code, utcnow())
    body: dict = {"id": str(confirmed.id)}
    if confirmed.recovery_codes is not None:
        body["recovery_codes"] = confirmed.recovery_codes
    return _answer(body)


@bp.delete("/mfa/<factor_id>")
def delete_factor(tenant: str, factor_id: str) -> ResponseReturnValue:
    token = bearer_token()
    factors.delete_own(tenant, token, _factor_id(factor_id), utcnow())
    return Response(status=204, headers=NO_STORE)


@bp.post("/mfa/recovery-codes")
def regenerate_recovery_codes(tenant: str) -> ResponseReturnValue:
    token = bearer_token()
    body_params(request)  # a body, if any, must still be well-formed
    return _answer({"recovery_codes": factors.regenerate_recovery_codes(tenant, token,
                                                                        utcnow())})
