"""Views: parse the request, call one service, shape the response."""
from __future__ import annotations

import re
from datetime import datetime
from datetime import timezone
from typing import Callable

from flask import current_app
from flask import jsonify
from flask import request

from app.errors import InvalidRequest
from app.errors import NotFound
from app.errors import UnsupportedGrantType
from app.models.tenant import SLUG_PATTERN
from app.oauth import bp
from app.oauth.params import body_params
from app.oauth.params import require
from app.oauth.responses import token_response
from app.services import keys
from app.services import tokens
from app.services.users import validate_credentials

_SLUG = re.compile(SLUG_PATTERN)
MAX_TOKEN_LENGTH = 512


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@bp.url_value_preprocessor
def check_tenant_slug(endpoint, values) -> None:
    # Only the format: the tenant itself is resolved inside each service's transaction.
    if not _SLUG.match(values.get("tenant", "")):
        raise NotFound("Unknown tenant.")


def issuer(tenant: str) -> str:
    """`iss` and the metadata base: configured BASE_URL, else the request's own root."""
    base = current_app.config["BASE_URL"] or request.host_url.rstrip("/")
    return f"{base}/v1/tenants/{tenant}"


def _password_grant(tenant: str, params: dict[str, str]):
    username, password = require(params, "username"), require(params, "password")
    validate_credentials(username, password)  # length limits before any hashing
    return tokens.login(tenant, username, password, issuer=issuer(tenant), now=utcnow(),
                        user_agent=request.headers.get("User-Agent"))


def _refresh_grant(tenant: str, params: dict[str, str]):
    presented = require(params, "refresh_token")
    if len(presented) > MAX_TOKEN_LENGTH:
        raise InvalidRequest("Parameter 'refresh_token' is too long.")
    return tokens.rotate(tenant, presented, issuer=issuer(tenant), now=utcnow())


GRANTS: dict[str, Callable] = {
    "password": _password_grant,
    "refresh_token": _refresh_grant,
}


@bp.post("/token")
def token(tenant: str):
    """RFC 6749 token endpoint: password and refresh_token grants."""
    params = body_params(request)
    grant = GRANTS.get(require(params, "grant_type"))
    if grant is None:
        raise UnsupportedGrantType()
    return token_response(grant(tenant, params))


@bp.get("/jwks.json")
def jwks(tenant: str):
    """RFC 7517 key set: the current key and retired keys still needed for verification."""
    response = jsonify({"keys": keys.published_keys(tenant, utcnow())})
    response.headers["Cache-Control"] = "public, max-age=60"
    return response

