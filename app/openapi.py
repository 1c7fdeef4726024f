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

from app.http.models import MAX_PARAM_LENGTH
from app.http.models import MAX_TOKEN_LENGTH
from app.models.tenant import SLUG_PATTERN
from app.models.user import MAX_USERNAME_LENGTH
from app.services.accounts.users import MAX_PASSWORD_LENGTH
from app.services.audit import events

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
SCOPE_CHALLENGE = {"WWW-Authenticate": {
    "description": 'Bearer error="insufficient_scope", scope="admin"',
    "schema": {"type": "string"}}}
# An admin key is checked before anything else the request carries (SPEC §9).
ADMIN_KEY_ERRORS = {
    "401": _error("Missing, unknown or revoked admin key, or a key of another tenant.",
                  "invalid_token", WWW_AUTHENTICATE),
    "403": _error("A valid key of this tenant without the scope the endpoint needs.",
                  "insufficient_scope", SCOPE_CHALLENGE),
}
# Admin bodies are strict JSON: the description starts with the offending field's name.
ADMIN_BODY_ERRORS = {
    "400": _error("Malformed JSON, an unknown, repeated or missing field, a wrong type, or a "
                  "value the tenant's policy refuses; `error_description` starts with the "
                  "field name.", "invalid_request"),
    "413": BODY_ERRORS["413"],
    "415": _error("A content type other than `application/json`.", "unsupported_media_type"),
}
QUERY_ERRORS = {
    "400": _error("An unknown, repeated or out-of-range query parameter; "
                  "`error_description` starts with its name.", "invalid_request"),
    # gunicorn's limit_request_line: refused before the application runs, so not JSON.
    "414": {"description": "The request line is over 4094 bytes; answered by the HTTP server "
                           "itself (an HTML body).",
            "content": {"text/html": {"schema": {"type": "string"}}}},
}


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


ADMIN_KEY: list[dict[str, list[str]]] = [{"adminKey": []}]
ADMIN_BASE = f"{TENANT_BASE}/admin"
USER_ID_PARAM = {"name": "user_id", "in": "path", "required": True,
                 "description": "A user id of this tenant (another tenant's id is 404).",
                 "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}, "example": "42"}
NO_CONTENT = {"description": "Done; no body."}


def _admin_body(schema_name: str, example: dict, required: bool = True) -> dict:
    """An admin request body: a JSON object only (SPEC §9)."""
    return {"required": required,
            "content": {JSON: {"schema": _ref(schema_name), "example": example}}}


def _admin_op(summary: str, responses: dict, **extra: Any) -> dict:
    return _op(summary, "admin", {**responses, **ADMIN_KEY_ERRORS, **COMMON_ERRORS},
               security=ADMIN_KEY, **extra)


def _query(name: str, description: str, schema: dict, example: Any) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema, "example": example}


USER_EXAMPLE = {"id": "42", "username": "alice", "created_at": "2026-01-05T09:30:00+00:00",
                "disabled": False, "disabled_at": None}
NOT_FOUND_USER = {"404": _error("Unknown tenant, or no such user in this tenant.", "not_found")}


def admin_paths() -> dict:
    """The tenant admin API (SPEC §9) and its event feed (SPEC §10): admin-key scope `admin`."""
    user = {"description": "The user.", "content": _json(_ref("AdminUser"), USER_EXAMPLE)}
    return {
        f"{ADMIN_BASE}/users": {"parameters": [TENANT_PARAM], "post": _admin_op(
            "Create a user (username normalised: NFC, case-folded).",
            {"201": {**user, "headers": {"Location": {
                "description": "The new user's URL.", "schema": {"type": "string"}}}},
             **ADMIN_BODY_ERRORS,
             "409": _error("The username exists (after normalisation).", "conflict")},
            operationId="adminCreateUser",
            requestBody=_admin_body("AdminCreateUser", {"username": "alice",
                                                        "password": "correct horse"})),
            "get": _admin_op(
            "Users in username order, keyset-paginated (stable under inserts), or the one "
            "user named by `username`.",
            {"200": {"description": "A page of users.", "content": _json(_ref("AdminUserPage"), {
                "users": [USER_EXAMPLE], "next_cursor": "YWxpY2U"})}, **QUERY_ERRORS},
            operationId="adminListUsers", parameters=[
                _query("limit", "Page size.", {"type": "integer", "minimum": 1,
                                               "maximum": 200, "default": 50}, 50),
                _query("cursor", "`next_cursor` of the previous page.",
                       {"type": "string", "maxLength": MAX_PARAM_LENGTH}, "YWxpY2U"),
                _query("username", "Find one user, normalised as at login.",
                       {"type": "string", "maxLength": MAX_PARAM_LENGTH}, "Alice")])},
        f"{ADMIN_BASE}/users/{{user_id}}": {"parameters": [TENANT_PARAM, USER_ID_PARAM],
            "get": _admin_op("One user.", {"200": user, **NOT_FOUND_USER},
                             operationId="adminGetUser"),
            "patch": _admin_op(
            "Disable or enable a user; disabling revokes every session in the same "
            "transaction.", {"200": user, **ADMIN_BODY_ERRORS, **NOT_FOUND_USER},
            operationId="adminUpdateUser",
            requestBody=_admin_body("AdminUpdateUser", {"disabled": True}))},
        f"{ADMIN_BASE}/users/{{user_id}}/password": {
            "parameters": [TENANT_PARAM, USER_ID_PARAM], "put": _admin_op(
            "Set the user's password (tenant policy applies); revokes every session.",
            {"204": NO_CONTENT, **ADMIN_BODY_ERRORS, **NOT_FOUND_USER},
            operationId="adminSetPassword",
            requestBody=_admin_body("AdminSetPassword", {"password": "a new passphrase"}))},
        f"{ADMIN_BASE}/users/{{user_id}}/reset-link": {
            "parameters": [TENANT_PARAM, USER_ID_PARAM], "post": _admin_op(
            "A single-use token for `POST …/password/reset` (the application mails it).",
            {"200": {"description": "The reset token.", "content": _json(_ref("ResetLink"), {
                "token": "eyJ1IjoiNDIi...", "expires_in": 3600})},
             **ADMIN_BODY_ERRORS, **NOT_FOUND_USER},
            operationId="adminResetLink",
            requestBody=_admin_body("Empty", {}, required=False))},
        f"{ADMIN_BASE}/users/{{user_id}}/sessions": {
            "parameters": [TENANT_PARAM, USER_ID_PARAM],
            "get": _admin_op("The user's live sessions.", {
                "200": {"description": "Live sessions.", "content": _json(
                    {"type": "object", "required": ["sessions"], "properties": {
                        "sessions": {"type": "array", "items": _ref("AdminSession")}}})},
                **NOT_FOUND_USER}, operationId="adminUserSessions"),
            "delete": _admin_op("Log the user out everywhere (revokes every session).",
                                {"204": NO_CONTENT, **NOT_FOUND_USER},
                                operationId="adminLogoutEverywhere")},
        f"{ADMIN_BASE}/sessions/{{session_id}}": {
            "parameters": [TENANT_PARAM, {
                "name": "session_id", "in": "path", "required": True,
                "description": "A session id of this tenant.", "schema": {"type": "string"},
                "example": "0b6f3c9e-8a7d-4f43-9d0e-2f1c5a7b9e11"}],
            "delete": _admin_op("Revoke one session of the tenant.", {
                "204": NO_CONTENT,
                "404": _error("Unknown tenant, or no such session in this tenant.",
                              "not_found")}, operationId="adminDeleteSession")},
        f"{ADMIN_BASE}/events": {"parameters": [TENANT_PARAM], "get": _admin_op(
            "Security events after `after`, in commit-safe order (transaction, then id); "
            "never skips one that commits later with a smaller id (SPEC §10).",
            {"200": {"description": "A page of events.", "content": _json(_ref("EventPage"), {
                "events": [{"id": "1043", "type": "session.revoked",
                            "occurred_at": "2026-01-05T09:30:00+00:00", "tenant": "acme",
                            "actor": {"type": "admin_key", "id": "3"},
                            "data": {"session_id": "0b6f3c9e-8a7d-4f43-9d0e-2f1c5a7b9e11",
                                     "reason": "admin", "user_id": "42"}}],
                "next_after": "1043"})}, **QUERY_ERRORS},
            operationId="adminListEvents", parameters=[
                _query("after", "`next_after` of the previous page (an event id).",
                       {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}, 1042),
                _query("limit", "Page size.", {"type": "integer", "minimum": 1,
                                               "maximum": events.MAX_LIMIT,
                                               "default": events.DEFAULT_LIMIT}, 50)])},
    }


def introspection_paths() -> dict:
    """RFC 7662 introspection, for resource servers holding an admin or introspect key."""
    return {f"{TENANT_BASE}/introspect": {"parameters": [TENANT_PARAM], "post": _op(
        "Is this token active now (signature, expiry and session)? RFC 7662.", "tokens",
        {"200": {"description": "`{\"active\": false}` for anything unknown, expired, "
                               "revoked or of another tenant.",
                 "content": _json(_ref("Introspection"), {
                     "active": True, "token_type": "access_token", "sub": "42",
                     "username": "alice", "tid": 1, "sid": "0b6f3c9e-8a7d-4f43-9d0e-2f1c5a7b9e11",
                     "iss": "https://auth.example.com/v1/tenants/acme", "aud": "baton",
                     "iat": 1767605400, "exp": 1767606300,
                     "jti": "Zk3q9w0xV1Rj2c8b"})},
         **BODY_ERRORS, **ADMIN_KEY_ERRORS, **COMMON_ERRORS},
        operationId="introspect", security=ADMIN_KEY,
        requestBody=_body("IntrospectRequest", {"token": "ACCESS_TOKEN_TO_CHECK",
                                                "token_type_hint": "access_token"}))}}


def metrics_paths() -> dict:
    """Prometheus scrape target (SPEC §12)."""
    return {"/metrics": {"get": _op(
        "Prometheus text format, summed over every gunicorn worker. Protect it at the proxy.",
        "operations",
        {"200": {"description": "Counters, histogram and event gauges.",
                 "content": {"text/plain": {"schema": {"type": "string"}, "example":
                             'baton_refresh_total{outcome="rotated"} 1042.0\n'}}},
         "404": _error("Metrics are turned off (`BATON_METRICS=0`).", "not_found")},
        operationId="metrics")}}


# One entry per group of endpoints.
SECTIONS: list[Callable[[], dict]] = [token_paths, bearer_paths, introspection_paths,
                                      discovery_paths, admin_paths, health_paths, metrics_paths]


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
        "introspection_endpoint": _string("RFC 7662; needs an admin key.", format="uri"),
        "grant_types_supported": {"type": "array", "items": {"type": "string"}},
        "token_endpoint_auth_methods_supported": {"type": "array",
                                                  "items": {"type": "string"}}}},
}

ISO_TIME = {"type": "string", "format": "date-time"}
SCHEMAS.update({
    "Empty": {"type": "object", "maxProperties": 0},
    "AdminUser": {"type": "object", "required": [
        "id", "username", "created_at", "disabled", "disabled_at"], "properties": {
        "id": _string("User id."), "username": _string("Normalised username."),
        "created_at": ISO_TIME, "disabled": {"type": "boolean"},
        "disabled_at": {"type": ["string", "null"], "format": "date-time"}}},
    "AdminUserPage": {"type": "object", "required": ["users", "next_cursor"], "properties": {
        "users": {"type": "array", "items": _ref("AdminUser")},
        "next_cursor": {"type": ["string", "null"],
                        "description": "Pass as `cursor` for the next page; null at the end."}}},
    "AdminCreateUser": {"type": "object", "required": ["username", "password"],
                        "additionalProperties": False, "properties": {
        "username": _string("Unicode; NFC and case-folded; no surrounding spaces.",
                            minLength=1, maxLength=MAX_USERNAME_LENGTH),
        "password": _string("Subject to the tenant's password policy.", minLength=1,
                            maxLength=MAX_PASSWORD_LENGTH, format="password")}},
    "AdminUpdateUser": {"type": "object", "required": ["disabled"],
                        "additionalProperties": False,
                        "properties": {"disabled": {"type": "boolean"}}},
    "AdminSetPassword": {"type": "object", "required": ["password"],
                         "additionalProperties": False, "properties": {
        "password": _string("Subject to the tenant's password policy.", minLength=1,
                            maxLength=MAX_PASSWORD_LENGTH, format="password")}},
    "ResetLink": {"type": "object", "required": ["token", "expires_in"], "properties": {
        "token": _string("Signed, time-limited, single-use."),
        "expires_in": {"type": "integer", "description": "Seconds the token is valid."}}},
    "AdminSession": {"type": "object", "required": [
        "id", "created_at", "last_used_at", "expires_at", "user_agent"], "properties": {
        "id": _string("Session id."), "created_at": ISO_TIME, "last_used_at": ISO_TIME,
        "expires_at": {**ISO_TIME, "description": "Absolute end of the session."},
        "user_agent": {"type": ["string", "null"]}}},
    "Event": {"type": "object", "required": [
        "id", "type", "occurred_at", "tenant", "actor", "data"], "properties": {
        "id": _string("Event id; also the webhook's `webhook-id`."),
        "type": {"enum": list(events.KINDS)},
        "occurred_at": ISO_TIME, "tenant": _string("Tenant slug."),
        "actor": {"type": "object", "required": ["type", "id"], "properties": {
            "type": {"enum": ["user", "admin_key", "cli", "system"]},
            "id": {"type": ["string", "null"]}}},
        "data": {"type": "object", "description": "Ids, the revoke `reason` (one of "
                 + ", ".join(events.REVOKE_REASONS) + "), the client address where known; "
                 "never a token, password or key."}}},
    "EventPage": {"type": "object", "required": ["events", "next_after"], "properties": {
        "events": {"type": "array", "items": _ref("Event")},
        "next_after": {"type": ["string", "null"],
                       "description": "The last id returned, or `after` when the page is "
                                      "empty (null if neither)."}}},
    "IntrospectRequest": {"type": "object", "required": ["token"], "properties": {
        "token": _param("An access or refresh token of this tenant.", 4 * MAX_TOKEN_LENGTH),
        "token_type_hint": _string("`access_token` or `refresh_token`; anything else "
                                   "searches both.")}},
    "Introspection": {"type": "object", "required": ["active"], "properties": {
        "active": {"type": "boolean"},
        "token_type": {"enum": ["access_token", "refresh_token"]},
        "sub": _string("User id."), "username": _string("Normalised username."),
        "tid": {"type": "integer", "description": "Tenant id."},
        "sid": _string("Session id."), "iss": _string("Issuer."),
        "aud": {"type": ["string", "array"], "description": "Access tokens only."},
        "iat": {"type": "integer"}, "exp": {"type": "integer"},
        "jti": _string("Access tokens only.")}},
})

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "The user's access token from `POST …/token`."},
    "adminKey": {"type": "http", "scheme": "bearer",
                 "description": "A tenant admin key (`bat_…`, from `flask admin-keys create`): "
                                "scope `admin` for the admin API, `introspect` (or `admin`) "
                                "for introspection. A key works only for its own tenant."},
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
