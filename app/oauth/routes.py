"""Views: parse the request, call one service, shape the response.

Each view declares its operation (app.http.operations): the models it parses and answers
with, which are also what `GET /openapi.json` describes.
"""
from __future__ import annotations

from flask import Response
from flask import request
from flask.globals import request_ctx
from flask.typing import ResponseReturnValue

from app.http.answers import NO_CONTENT
from app.http.answers import RETRY_AFTER
from app.http.answers import json_answer
from app.http.answers import ok
from app.http.answers import refused
from app.http.auth import bearer_credential
from app.http.auth import require_admin_key
from app.http.inputs import FormOrJson
from app.http.models import MAX_TOKEN_LENGTH
from app.http.models import Parameters
from app.http.operations import ADMIN_KEY
from app.http.operations import BEARER
from app.http.operations import operation
from app.http.web import check_tenant_slug
from app.http.web import client_address
from app.http.web import utcnow
from app.oauth import bp
from app.oauth import wellknown_bp
from app.oauth.models import JWKS
from app.oauth.models import TOKEN_REQUEST
from app.oauth.models import AuthorizationCodeGrant
from app.oauth.models import Introspection
from app.oauth.models import IntrospectRequest
from app.oauth.models import Metadata
from app.oauth.models import PasswordGrant
from app.oauth.models import PasswordResetDone
from app.oauth.models import PasswordResetRequest
from app.oauth.models import RefreshTokenGrant
from app.oauth.models import Revoked
from app.oauth.models import RevokeRequest
from app.oauth.models import Session
from app.oauth.models import SessionList
from app.oauth.models import TokenResponse
from app.oauth.models import UserInfo
from app.services.accounts import password_reset as password_reset_service
from app.services.signin import codes
from app.services.signin import password_grant
from app.services.tenancy import signing_keys
from app.services.tenancy import tenants
from app.services.tokens import introspection
from app.services.tokens import rotation
from app.services.tokens import sessions
from app.services.tokens.issuing import IssuedTokens

bp.url_value_preprocessor(check_tenant_slug)


def _grant(tenant: str, grant: Parameters) -> IssuedTokens:
    if isinstance(grant, RefreshTokenGrant):
        return rotation.rotate(tenant, grant.refresh_token, now=utcnow(),
                               client_address=client_address())
    if isinstance(grant, AuthorizationCodeGrant):
        return codes.redeem(tenant, grant.code, grant.code_verifier, grant.client_id,
                            now=utcnow(), user_agent=request.headers.get("User-Agent"),
                            client_address=client_address())
    assert isinstance(grant, PasswordGrant)  # the three grants of TOKEN_REQUEST
    return password_grant.login(tenant, grant.username, grant.password, now=utcnow(),
                                user_agent=request.headers.get("User-Agent"),
                                client_address=client_address())


def bearer_token() -> str:
    """The user's access token (RFC 6750 §2.1), or InvalidToken (401)."""
    return bearer_credential(4 * MAX_TOKEN_LENGTH)


def token_response(issued: IssuedTokens) -> Response:
    """RFC 6749 §5.1 success body with the no-store headers (SPEC §4)."""
    return json_answer(TokenResponse(
        access_token=issued.access_token, token_type="Bearer", expires_in=issued.expires_in,
        refresh_token=issued.refresh_token, refresh_expires_in=issued.refresh_expires_in,
        session_id=issued.session_id))


@bp.post("/token")
@operation(
    "Password login, refresh-token rotation, or an authorization code with its PKCE "
    "verifier (RFC 6749, RFC 7636).", tag="tokens", body=TOKEN_REQUEST,
    returns=ok(TokenResponse, "New tokens; `Cache-Control: no-store`."),
    refusals=(refused(400, "invalid_grant",
                      "invalid_request, unsupported_grant_type, or invalid_grant (one body for "
                      "every bad credential or token: no oracle)."),
              refused(429, "slow_down", "Too many failed logins in the window.", RETRY_AFTER)))
def token(tenant: str, body: Parameters) -> ResponseReturnValue:
    """RFC 6749 token endpoint: password, refresh_token and authorization_code grants."""
    return token_response(_grant(tenant, body))


@bp.get("/jwks.json")
@operation("The tenant's public signing keys (RFC 7517), current and still-needed retired.",
           tag="discovery", returns=ok(JWKS, "JSON Web Key Set."))
def jwks(tenant: str) -> ResponseReturnValue:
    """RFC 7517 key set: the current key and retired keys still needed for verification."""
    keys = signing_keys.published_keys(tenant, utcnow())
    return json_answer(JWKS.model_validate({"keys": keys}),
                       headers={"Cache-Control": "public, max-age=60"})


@bp.post("/revoke")
@operation("Revoke a token's whole session (RFC 7009); 200 even for unknown tokens.",
           tag="tokens", body=FormOrJson(RevokeRequest),
           returns=ok(Revoked, "Revoked, or nothing to revoke."))
def revoke(tenant: str, body: RevokeRequest) -> ResponseReturnValue:
    """RFC 7009 revocation: 200 whether or not the token was known."""
    hint = body.token_type_hint
    if hint not in (None, "access_token", "refresh_token"):
        # RFC 7009 §2.2.1: an unknown hint is not an error; search every kind.
        hint = None
    sessions.revoke(tenant, body.token, hint, utcnow())
    return json_answer(Revoked())


@bp.post("/introspect")
@require_admin_key("introspect")
@operation("Is this token active now (signature, expiry and session)? RFC 7662.",
           tag="tokens", body=FormOrJson(IntrospectRequest), security=ADMIN_KEY,
           returns=ok(Introspection, '`{"active": false}` for anything unknown, expired, '
                                     'revoked or of another tenant.'))
def introspect(tenant: str, body: IntrospectRequest) -> ResponseReturnValue:
    """RFC 7662: is this token active now? Authenticated with an admin key of the tenant."""
    answer = introspection.introspect(tenant, body.token, body.token_type_hint, now=utcnow())
    return json_answer(Introspection.model_validate(answer))


# SPEC §4: the endpoints a browser client calls; never the admin API or introspection.
CORS_ENDPOINTS = {"oauth.token", "oauth.revoke", "oauth.userinfo", "oauth.list_sessions",
                  "oauth.delete_session",
                  # SPEC §13: a first-party web app signs its users in and manages their factors
                  "oauth.authorize_challenge", "oauth.list_factors", "oauth.enrol_totp",
                  "oauth.confirm_totp", "oauth.delete_factor", "oauth.regenerate_recovery_codes",
                  "oauth.passkey_options", "oauth.register_passkey"}
CORS_MAX_AGE_S = 600


@bp.after_request
def add_cors_headers(response: Response) -> Response:
    """Allow the tenant's configured origins, preflights (OPTIONS) included."""
    req = request_ctx.request  # one context lookup (the token endpoint is the hot path)
    if req.endpoint not in CORS_ENDPOINTS:
        return response
    vary = response.headers.get("Vary")  # the header as is: response.vary re-parses it
    if not vary:
        response.headers["Vary"] = "Origin"
    elif "origin" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Origin"
    origin = req.headers.get("Origin")
    if not origin or origin not in tenants.cors_origins((req.view_args or {})["tenant"]):
        return response
    response.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = ", ".join(sorted(response.allow))
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
    else:
        response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate, Retry-After"
    return response


@bp.get("/userinfo")
@operation("The caller's identity.", tag="users", security=BEARER,
           returns=ok(UserInfo, "Who the token belongs to."))
def userinfo(tenant: str) -> ResponseReturnValue:
    return json_answer(UserInfo(**sessions.userinfo(tenant, bearer_token(), utcnow())))


@bp.get("/sessions")
@operation("The caller's live sessions; `current` marks the one of this token.", tag="users",
           security=BEARER, returns=ok(SessionList, "Live sessions."))
def list_sessions(tenant: str) -> ResponseReturnValue:
    found = sessions.list_sessions(tenant, bearer_token(), utcnow())
    return json_answer(SessionList(sessions=[Session.model_validate(s) for s in found]))


@bp.delete("/sessions/<session_id>")
@operation("Revoke one of the caller's sessions (log out there).", tag="users",
           security=BEARER, returns=NO_CONTENT)
def delete_session(tenant: str, session_id: str) -> ResponseReturnValue:
    sessions.delete_session(tenant, bearer_token(), session_id, utcnow())
    return "", 204


@bp.get("/.well-known/oauth-authorization-server")
@operation("Authorization server metadata (RFC 8414).", tag="discovery",
           returns=ok(Metadata, "Metadata."))
def metadata(tenant: str) -> ResponseReturnValue:
    """RFC 8414 metadata under the tenant base (SPEC §4.2)."""
    return json_answer(server_metadata(tenant), headers={})


@wellknown_bp.get("/.well-known/oauth-authorization-server/v1/tenants/<tenant>")
@operation("The same metadata where RFC 8414 §3.1 puts it.", tag="discovery",
           returns=ok(Metadata, "Metadata."), operation_id="metadataRfc8414")
def metadata_rfc8414(tenant: str) -> ResponseReturnValue:
    """The same metadata where RFC 8414 §3.1 puts it for an issuer with a path."""
    return json_answer(server_metadata(tenant), headers={})


def server_metadata(tenant: str) -> Metadata:
    info = tenants.describe(tenant)  # resolves the tenant first: 404 before any URL is built
    base = info.issuer
    return Metadata(
        issuer=base,
        token_endpoint=f"{base}/token",
        revocation_endpoint=f"{base}/revoke",
        jwks_uri=f"{base}/jwks.json",
        userinfo_endpoint=f"{base}/userinfo",
        introspection_endpoint=f"{base}/introspect",
        grant_types_supported=[grant for grant in TOKEN_REQUEST.table
                               if grant != "password" or info.password_grant],
        response_types_supported=[],
        token_endpoint_auth_methods_supported=["none"],
        revocation_endpoint_auth_methods_supported=["none"],
        # An admin key of the tenant (scope introspect or admin) as a Bearer token.
        introspection_endpoint_auth_methods_supported=["bearer"],
        # SPEC §13.3: the first-party challenge flow, then the code with PKCE (S256 only).
        authorization_challenge_endpoint=f"{base}/authorize-challenge",
        code_challenge_methods_supported=["S256"],
    )


@bp.post("/password/reset")
@operation(
    "Set a new password with a reset token; revokes every session of the user.",
    tag="accounts", body=FormOrJson(PasswordResetRequest),
    returns=ok(PasswordResetDone, "Password changed."),
    refusals=(refused(400, "invalid_grant",
                      "Malformed request, a password the policy refuses, or an invalid, "
                      "expired or used token (invalid_grant)."),))
def password_reset(tenant: str, body: PasswordResetRequest) -> ResponseReturnValue:
    """Set a new password with a token from `flask users reset-link`; revokes every session."""
    password_reset_service.reset_password(tenant, body.token, body.new_password, utcnow())
    return json_answer(PasswordResetDone(status="password_reset"))

