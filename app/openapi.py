"""The OpenAPI 3.1 description of Baton's HTTP API, served at `GET /openapi.json` (SPEC §4.2).

Built once per process as a plain dict. Each group of endpoints is one *section*: a function
returning its `paths`; `SECTIONS` lists them, so a new group (the admin API) is one more
function appended there. The suite validates the document and fuzzes a live server from it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any
from typing import Callable

from flask import Blueprint
from flask import jsonify
from flask.typing import ResponseReturnValue

from app.models.tenant import SLUG_PATTERN
from app.models.user import MAX_USERNAME_LENGTH
from app.oauth.params import MAX_TOKEN_LENGTH
from app.services.users import MAX_PASSWORD_LENGTH

bp = Blueprint("openapi", __name__)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
TENANT_BASE = "/v1/tenants/{tenant}"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, example: Any = None) -> dict:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {JSON: media}


def _error(description: str, example_error: str, headers: dict | None = None) -> dict:
    response: dict[str, Any] = {
        "description": description,
        "content": _json(_ref("Error"), {"error": example_error,
                                          "error_description": "A sentence for humans."}),
    }
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.",
                               "schema": {"type": "string"}}}
WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": 'Bearer error="invalid_token"',
                                         "schema": {"type": "string"}}}

# Errors any tenant-scoped operation may answer.
COMMON_ERRORS = {
    "404": _error("Unknown tenant (or, for sessions, another user's session).", "not_found"),
    "503": _error("Database unreachable or a lock wait past the lock timeout.",
                  "temporarily_unavailable", RETRY_AFTER),
}
BODY_ERRORS = {
    "400": _error("Missing, repeated, empty or malformed parameter (RFC 6749 §5.2 shape).",
                  "invalid_request"),
    "413": _error("Body over the limit (16 KiB by default).", "request_too_large"),
    "415": _error("A content type other than form or JSON.", "unsupported_media_type"),
}
BEARER_ERRORS = {"401": _error("Missing, invalid or expired access token.", "invalid_token",
                               WWW_AUTHENTICATE)}


def _body(schema_name: str, example: dict) -> dict:
    """A request body accepted as a form or as a JSON object of strings."""
    return {"required": True, "content": {
        FORM: {"schema": _ref(schema_name), "example": example},
        JSON: {"schema": _ref(schema_name), "example": example},
    }}


def _op(summary: str, tag: str, responses: dict, **extra: Any) -> dict:
    operation = {"summary": summary, "tags": [tag], "responses": responses}
    operation.update(extra)
    return operation


TENANT_PARAM = {"name": "tenant", "in": "path", "required": True,
                "description": "The tenant's slug.",
                "schema": {"type": "string", "pattern": SLUG_PATTERN}, "example": "acme"}
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


def token_paths() -> dict:
    """Token, revoke and password reset: the unauthenticated, form-or-JSON endpoints."""
    return {
        f"{TENANT_BASE}/token": {"parameters": [TENANT_PARAM], "post": _op(
            "Password login or refresh-token rotation (RFC 6749).", "tokens",
            {"200": {"description": "New tokens; `Cache-Control: no-store`.",
                     "content": _json(_ref("TokenResponse"))},
             **BODY_ERRORS,
             "400": _error("invalid_request, unsupported_grant_type, or invalid_grant (one "
                           "body for every bad credential or token: no oracle).",
                           "invalid_grant"),
             "429": _error("Too many failed logins in the window.", "slow_down", RETRY_AFTER),
             **COMMON_ERRORS},
            operationId="token",
            requestBody=_body("TokenRequest", {"grant_type": "password", "username": "alice",
                                               "password": "correct horse"}))},
        f"{TENANT_BASE}/revoke": {"parameters": [TENANT_PARAM], "post": _op(
            "Revoke a token's whole session (RFC 7009); 200 even for unknown tokens.", "tokens",
            {"200": {"description": "Revoked, or nothing to revoke.",
                     "content": _json({"type": "object", "maxProperties": 0}, {})},
             **BODY_ERRORS, **COMMON_ERRORS},
            operationId="revoke",
            requestBody=_body("RevokeRequest", {"token": "THE_REFRESH_TOKEN",
                                                "token_type_hint": "refresh_token"}))},
        f"{TENANT_BASE}/password/reset": {"parameters": [TENANT_PARAM], "post": _op(
            "Set a new password with a reset token; revokes every session of the user.",
            "accounts",
            {"200": {"description": "Password changed.",
                     "content": _json({"type": "object", "required": ["status"],
                                       "properties": {"status": {"const": "password_reset"}}},
                                      {"status": "password_reset"})},
             **BODY_ERRORS,
             "400": _error("Malformed request, a password the policy refuses, or an invalid, "
                           "expired or used token (invalid_grant).", "invalid_grant"),
             **COMMON_ERRORS},
            operationId="passwordReset",
            requestBody=_body("PasswordResetRequest", {"token": "THE_RESET_TOKEN",
                                                       "new_password": "a new passphrase"}))},
    }


def bearer_paths() -> dict:
    """Endpoints called with the user's access token."""
    return {
        f"{TENANT_BASE}/userinfo": {"parameters": [TENANT_PARAM], "get": _op(
            "The caller's identity.", "users",
            {"200": {"description": "Who the token belongs to.",
                     "content": _json(_ref("UserInfo"), {"sub": "42", "username": "alice",
                                                         "tenant": "acme"})},
             **BEARER_ERRORS, **COMMON_ERRORS},
            operationId="userinfo", security=BEARER)},
        f"{TENANT_BASE}/sessions": {"parameters": [TENANT_PARAM], "get": _op(
            "The caller's live sessions; `current` marks the one of this token.", "users",
            {"200": {"description": "Live sessions.",
                     "content": _json({"type": "object", "required": ["sessions"],
                                       "properties": {"sessions": {
                                           "type": "array", "items": _ref("Session")}}})},
             **BEARER_ERRORS, **COMMON_ERRORS},
            operationId="listSessions", security=BEARER)},
        f"{TENANT_BASE}/sessions/{{session_id}}": {
            "parameters": [TENANT_PARAM, {"name": "session_id", "in": "path", "required": True,
                                          "schema": {"type": "string"}, "example": "7"}],
            "delete": _op(
                "Revoke one of the caller's sessions (log out there).", "users",
                {"204": {"description": "Revoked."}, **BEARER_ERRORS, **COMMON_ERRORS},
                operationId="deleteSession", security=BEARER)},
    }


def discovery_paths() -> dict:
    """Public keys and RFC 8414 metadata."""
    metadata = _op("Authorization server metadata (RFC 8414).", "discovery",
                   {"200": {"description": "Metadata.", "content": _json(_ref("Metadata"))},
                    **COMMON_ERRORS}, operationId="metadata")
    return {
        f"{TENANT_BASE}/jwks.json": {"parameters": [TENANT_PARAM], "get": _op(
            "The tenant's public signing keys (RFC 7517), current and still-needed retired.",
            "discovery",
            {"200": {"description": "JSON Web Key Set.", "content": _json(_ref("JWKS"))},
             **COMMON_ERRORS}, operationId="jwks")},
        f"{TENANT_BASE}/.well-known/oauth-authorization-server": {
            "parameters": [TENANT_PARAM], "get": metadata},
        "/.well-known/oauth-authorization-server/v1/tenants/{tenant}": {
            "parameters": [TENANT_PARAM],
            "get": {**metadata, "operationId": "metadataRfc8414",
                    "summary": "The same metadata where RFC 8414 §3.1 puts it."}},
    }


def health_paths() -> dict:
    """Probes and this document."""
    status = {"type": "object", "required": ["status"], "properties": {"status": {
        "type": "string"}}}
    return {
        "/healthz": {"get": _op("Liveness: the process is up.", "operations",
                                {"200": {"description": "Up.", "content": _json(status)}},
                                operationId="healthz")},
        "/readyz": {"get": _op(
            "Readiness: the database answers and the schema is at the migration head.",
            "operations",
            {"200": {"description": "Ready.", "content": _json(status)},
             "503": COMMON_ERRORS["503"]}, operationId="readyz")},
        "/openapi.json": {"get": _op("This document.", "operations",
                                     {"200": {"description": "OpenAPI 3.1 document.",
                                              "content": _json({"type": "object"})}},
                                     operationId="openapi")},
    }


# One entry per group of endpoints; the admin API adds its own section here.
SECTIONS: list[Callable[[], dict]] = [token_paths, bearer_paths, discovery_paths, health_paths]


def _string(description: str, **extra: Any) -> dict:
    return {"type": "string", "description": description, **extra}


def _param(description: str, max_length: int, **extra: Any) -> dict:
    """A body parameter: non-empty, bounded, without surrounding spaces or NUL."""
    return _string(description, minLength=1, maxLength=max_length,
                   pattern=r"^[^\s\x00](?:[^\x00]*[^\s\x00])?$", **extra)


SCHEMAS: dict[str, dict] = {
    "Error": {"type": "object", "required": ["error", "error_description"], "properties": {
        "error": _string("RFC 6749 §5.2 error code."),
        "error_description": _string("A sentence for humans.")}},
    "TokenRequest": {"oneOf": [_ref("PasswordGrant"), _ref("RefreshTokenGrant")]},
    "PasswordGrant": {"type": "object", "required": ["grant_type", "username", "password"],
                      "properties": {
        "grant_type": {"const": "password"},
        "username": _param("The username (case-insensitive).", MAX_USERNAME_LENGTH),
        "password": _param("", MAX_PASSWORD_LENGTH, format="password")}},
    "RefreshTokenGrant": {"type": "object", "required": ["grant_type", "refresh_token"],
                          "properties": {
        "grant_type": {"const": "refresh_token"},
        "refresh_token": _param("The current refresh token of the session.",
                                MAX_TOKEN_LENGTH)}},
    "TokenResponse": {"type": "object", "required": [
        "access_token", "token_type", "expires_in", "refresh_token", "refresh_expires_in",
        "session_id"], "properties": {
        "access_token": _string("EdDSA-signed JWT; verify with the JWKS, `iss` from the "
                                "metadata, and `aud` (`baton` unless configured)."),
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer", "description": "Seconds the access token lives."},
        "refresh_token": _string("Opaque; rotated at each use."),
        "refresh_expires_in": {"type": "integer",
                               "description": "Seconds until the refresh token's expiry."},
        "session_id": _string("The session (token family).")},
        "example": {"access_token": "eyJhbGciOiJFZERTQSIs...", "token_type": "Bearer",
                    "expires_in": 900, "refresh_token": "Q2xpZW50IHRva2Vu...",
                    "refresh_expires_in": 1209600, "session_id": "7"}},
    "RevokeRequest": {"type": "object", "required": ["token"], "properties": {
        "token": _param("A refresh or access token.", MAX_TOKEN_LENGTH),
        "token_type_hint": _string("`refresh_token` or `access_token` (an unknown hint is "
                                   "ignored).")}},
    "PasswordResetRequest": {"type": "object", "required": ["token", "new_password"],
                             "properties": {
        "token": _param("From `users reset-link`.", MAX_TOKEN_LENGTH),
        "new_password": _param("Subject to the tenant's password policy.",
                               MAX_PASSWORD_LENGTH, format="password")}},
    "UserInfo": {"type": "object", "required": ["sub", "username", "tenant"], "properties": {
        "sub": _string("User id."), "username": _string("Normalised username."),
        "tenant": _string("Tenant slug.")}},
    "Session": {"type": "object", "required": [
        "id", "created_at", "last_used_at", "expires_at", "user_agent", "current"],
        "properties": {
        "id": _string("Session id."),
        "created_at": _string("", format="date-time"),
        "last_used_at": _string("", format="date-time"),
        "expires_at": _string("Absolute end of the session.", format="date-time"),
        "user_agent": {"type": ["string", "null"]},
        "current": {"type": "boolean"}}},
    "JWKS": {"type": "object", "required": ["keys"], "properties": {"keys": {
        "type": "array", "items": {"type": "object", "required": ["kty", "kid"], "properties": {
            "kty": {"const": "OKP"}, "crv": {"const": "Ed25519"}, "kid": {"type": "string"},
            "x": {"type": "string"}, "alg": {"const": "EdDSA"}, "use": {"const": "sig"}}}}}},
    "Metadata": {"type": "object", "required": [
        "issuer", "token_endpoint", "revocation_endpoint", "jwks_uri",
        "grant_types_supported", "token_endpoint_auth_methods_supported"], "properties": {
        "issuer": _string("Compare with the token's `iss`.", format="uri"),
        "token_endpoint": _string("", format="uri"),
        "revocation_endpoint": _string("", format="uri"),
        "jwks_uri": _string("", format="uri"),
        "userinfo_endpoint": _string("", format="uri"),
        "grant_types_supported": {"type": "array", "items": {"type": "string"}},
        "token_endpoint_auth_methods_supported": {"type": "array",
                                                  "items": {"type": "string"}}}},
}

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "The user's access token from `POST …/token`."},
    "adminKey": {"type": "http", "scheme": "bearer",
                 "description": "A tenant admin key (`bat_…`) for the admin API."},
}


@lru_cache(maxsize=1)
def document() -> dict:
    """The whole OpenAPI document (built once; it depends on no setting)."""
    paths: dict = {}
    for section in SECTIONS:
        paths.update(section())
    return {
        "openapi": "3.1.0",
        "info": {"title": "Baton", "version": "1",
                 "description": "Multi-tenant token service with race-free refresh-token "
                                "rotation. Errors use the RFC 6749 §5.2 JSON shape."},
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }


@bp.get("/openapi.json")
def openapi_json() -> ResponseReturnValue:
    """GET /openapi.json."""
    response = jsonify(document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
