"""Views: parse the request, call one service, shape the response."""
from __future__ import annotations

from flask import Response
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue

from app.http.answers import json_answer
from app.http.auth import bearer_credential
from app.http.auth import require_admin_key
from app.http.web import check_tenant_slug
from app.http.web import utcnow
from app.http.wire import MAX_TOKEN_LENGTH
from app.http.wire import body_params
from app.http.wire import bounded
from app.http.wire import require
from app.oauth import bp
from app.oauth import wellknown_bp
from app.oauth.params import GRANT_TYPES
from app.oauth.params import PasswordGrant
from app.oauth.params import RefreshGrant
from app.oauth.params import parse_grant
from app.services.accounts import password_reset as password_reset_service
from app.services.signin import password_grant
from app.services.tenancy import signing_keys
from app.services.tenancy import tenants
from app.services.tokens import introspection
from app.services.tokens import rotation
from app.services.tokens import sessions
from app.services.tokens.issuing import IssuedTokens

bp.url_value_preprocessor(check_tenant_slug)


def _grant(tenant: str, grant: PasswordGrant | RefreshGrant) -> IssuedTokens:
    if isinstance(grant, PasswordGrant):
        return password_grant.login(tenant, grant.username, grant.password, now=utcnow(),
                            user_agent=request.headers.get("User-Agent"),
                            client_address=request.remote_addr)
    return rotation.rotate(tenant, grant.refresh_token, now=utcnow(),
                         client_address=request.remote_addr)


def bearer_token() -> str:
    """The user's access token (RFC 6750 §2.1), or InvalidToken (401)."""
    return bearer_credential(4 * MAX_TOKEN_LENGTH)


def token_response(issued: IssuedTokens) -> Response:
    """RFC 6749 §5.1 success body with the no-store headers (SPEC §4)."""
    return json_answer({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "refresh_expires_in": issued.refresh_expires_in,
        "session_id": issued.session_id,
    })


@bp.post("/token")
def token(tenant: str) -> ResponseReturnValue:
    """RFC 6749 token endpoint: password and refresh_token grants."""
    return token_response(_grant(tenant, parse_grant(body_params(request))))


@bp.get("/jwks.json")
def jwks(tenant: str) -> ResponseReturnValue:
    """RFC 7517 key set: the current key and retired keys still needed for verification."""
    response = jsonify({"keys": signing_keys.published_keys(tenant, utcnow())})
    response.headers["Cache-Control"] = "public, max-age=60"
    return response



@bp.post("/revoke")
def revoke(tenant: str) -> ResponseReturnValue:
    """RFC 7009 revocation: 200 whether or not the token was known."""
    params = body_params(request)
    token = bounded(require(params, "token"), "token")
    hint = params.get("token_type_hint")
    if hint not in (None, "access_token", "refresh_token"):
        # RFC 7009 §2.2.1: an unknown hint is not an error; search every kind.
        hint = None
    sessions.revoke(tenant, token, hint, utcnow())
    return json_answer({})


@bp.post("/introspect")
@require_admin_key("introspect")
def introspect(tenant: str) -> ResponseReturnValue:
    """RFC 7662: is this token active now? Authenticated with an admin key of the tenant."""
    params = body_params(request)
    token = bounded(require(params, "token"), "token", 4 * MAX_TOKEN_LENGTH)
    answer = introspection.introspect(tenant, token, params.get("token_type_hint"),
                                      now=utcnow())
    return json_answer(answer)


# SPEC §4: the endpoints a browser client calls; never the admin API or introspection.
CORS_ENDPOINTS = {"oauth.token", "oauth.revoke", "oauth.userinfo", "oauth.list_sessions",
                  "oauth.delete_session"}
CORS_MAX_AGE_S = 600


@bp.after_request
def add_cors_headers(response: Response) -> Response:
    """Allow the tenant's configured origins, preflights (OPTIONS) included."""
    if request.endpoint not in CORS_ENDPOINTS:
        return response
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if not origin or origin not in tenants.cors_origins((request.view_args or {})["tenant"]):
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
def userinfo(tenant: str) -> ResponseReturnValue:
    return json_answer(sessions.userinfo(tenant, bearer_token(), utcnow()))


@bp.get("/sessions")
def list_sessions(tenant: str) -> ResponseReturnValue:
    found = sessions.list_sessions(tenant, bearer_token(), utcnow())
    return json_answer({"sessions": [{
        "id": s.id,
        "created_at": s.created_at.isoformat(),
        "last_used_at": s.last_used_at.isoformat(),
        "expires_at": s.expires_at.isoformat(),
        "user_agent": s.user_agent,
        "current": s.current,
    } for s in found]})


@bp.delete("/sessions/<session_id>")
def delete_session(tenant: str, session_id: str) -> ResponseReturnValue:
    sessions.delete_session(tenant, bearer_token(), session_id, utcnow())
    return "", 204


@bp.get("/.well-known/oauth-authorization-server")
def metadata(tenant: str) -> ResponseReturnValue:
    """RFC 8414 metadata under the tenant base (SPEC §4.2)."""
    return jsonify(server_metadata(tenant))


@wellknown_bp.get("/.well-known/oauth-authorization-server/v1/tenants/<tenant>")
def metadata_rfc8414(tenant: str) -> ResponseReturnValue:
    """The same metadata where RFC 8414 §3.1 puts it for an issuer with a path."""
    return jsonify(server_metadata(tenant))


def server_metadata(tenant: str) -> dict:
    base = tenants.issuer(tenant)  # resolves the tenant first: 404 before any URL is built
    return {
        "issuer": base,
        "token_endpoint": f"{base}/token",
        "revocation_endpoint": f"{base}/revoke",
        "jwks_uri": f"{base}/jwks.json",
        "userinfo_endpoint": f"{base}/userinfo",
        "introspection_endpoint": f"{base}/introspect",
        "grant_types_supported": list(GRANT_TYPES),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        # An admin key of the tenant (scope introspect or admin) as a Bearer token.
        "introspection_endpoint_auth_methods_supported": ["bearer"],
    }


@bp.post("/password/reset")
def password_reset(tenant: str) -> ResponseReturnValue:
    """Set a new password with a token from `flask users reset-link`; revokes every session."""
    params = body_params(request)
    token = bounded(require(params, "token"), "token")
    password_reset_service.reset_password(tenant, token, require(params, "new_password"), utcnow())
    return json_answer({"status": "password_reset"})
