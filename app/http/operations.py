"""What an operation says about itself: its inputs, answers and security (SPEC §4.2).

`@operation(...)`, under a route decorator, declares an operation once. The same declaration
parses the request (the view receives `body=` and `query=` already validated, and path
parameters converted) and describes the operation in `GET /openapi.json` (app/openapi.py),
so the two cannot drift apart:

    @bp.post("/revoke")
    @operation("Revoke a token's whole session (RFC 7009).", tag="tokens",
               body=FormOrJson(RevokeRequest), returns=ok(Revoked, "Revoked."))
    def revoke(tenant: str, body: RevokeRequest) -> ResponseReturnValue: ...

Refusals common to a kind of input are added by the document itself: a body's 400/413/415,
a query's 400/414, a security scheme's 401 (and 403), a path parameter's 404 and 503.
`refusals=` adds (or rewords) the operation's own.
"""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any
from typing import Callable
from typing import Mapping

from flask import Blueprint
from flask.globals import request_ctx

from app.http.answers import INVALID_TOKEN_CHALLENGE
from app.http.answers import RETRY_AFTER
from app.http.answers import Answer
from app.http.answers import refused
from app.http.inputs import Body
from app.http.inputs import Query
from app.models.tenant import SLUG_PATTERN

ATTRIBUTE = "operation"  # where a view function keeps its Operation


@dataclass(frozen=True)
class Security:
    """A security scheme of the document (`components.securitySchemes`) and its refusals."""

    name: str
    scheme: Mapping[str, Any]
    refusals: tuple[Answer, ...]


BEARER = Security("bearerAuth", {
    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
    "description": "The user's access token from `POST …/token`."}, (
    refused(401, "invalid_token", "Missing, invalid or expired access token.",
            INVALID_TOKEN_CHALLENGE),))
ADMIN_KEY = Security("adminKey", {
    "type": "http", "scheme": "bearer",
    "description": "A tenant admin key (`bat_…`, from `flask admin-keys create`): scope "
                   "`admin` for the admin API, `introspect` (or `admin`) for introspection. "
                   "A key works only for its own tenant."}, (
    refused(401, "invalid_token",
            "Missing, unknown or revoked admin key, or a key of another tenant.",
            INVALID_TOKEN_CHALLENGE),
    refused(403, "insufficient_scope",
            "A valid key of this tenant without the scope the endpoint needs.",
            {"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="admin"'})))


@dataclass(frozen=True)
class PathParameter:
    """A path parameter: its schema and example, the refusals it brings, and optionally a
    conversion the view receives instead of the raw string (raising for a bad value)."""

    name: str
    description: str
    schema: Mapping[str, Any]
    example: str
    refusals: tuple[Answer, ...] = ()
    convert: Callable[[str], Any] | None = None


PATH_PARAMETERS: dict[str, PathParameter] = {}


def path_parameter(parameter: PathParameter) -> PathParameter:
    """Declare a path parameter by name, for every route that has it."""
    if PATH_PARAMETERS.get(parameter.name, parameter) != parameter:
        raise ValueError(f"path parameter {parameter.name!r} is declared twice")
    PATH_PARAMETERS[parameter.name] = parameter
    return parameter


UNAVAILABLE = refused(503, "temporarily_unavailable",
                      "Database unreachable or a lock wait past the lock timeout.", RETRY_AFTER)
path_parameter(PathParameter(
    "tenant", "The tenant's slug.", {"type": "string", "pattern": SLUG_PATTERN}, "acme",
    (refused(404, "not_found", "Unknown tenant."), UNAVAILABLE)))
path_parameter(PathParameter(
    "session_id", "A session id (the `session_id` of a token answer).",
    {"type": "string", "format": "uuid"}, "0b6f3c9e-8a7d-4f43-9d0e-2f1c5a7b9e11",
    (refused(404, "not_found", "Unknown tenant, or no such session (of the caller; for the "
                               "admin API, of the tenant)."),)))


@dataclass(frozen=True)
class BlueprintDoc:
    """What every operation of a blueprint shares in the document."""

    tag: str | None = None
    security: Security | None = None
    operation_prefix: str = ""


BLUEPRINTS: dict[str, BlueprintDoc] = {}


def describe_blueprint(bp: Blueprint, doc: BlueprintDoc) -> None:
    """Defaults for the blueprint's operations (the admin API: its tag and admin key)."""
    BLUEPRINTS[bp.name] = doc


@dataclass(frozen=True)
class Operation:
    """One operation as the document describes it."""

    summary: str
    returns: tuple[Answer, ...]
    tag: str | None = None
    body: Body | None = None
    query: Query | None = None
    security: Security | None = None
    refusals: tuple[Answer, ...] = ()
    operation_id: str | None = None


def operation(summary: str, *, returns: Answer | tuple[Answer, ...],
              tag: str | None = None, body: Body | None = None, query: Query | None = None,
              security: Security | None = None, refusals: tuple[Answer, ...] = (),
              operation_id: str | None = None) -> Callable[[Callable], Callable]:
    """Declare the view's operation: parse what it declares, and describe it."""
    spec = Operation(summary, returns if isinstance(returns, tuple) else (returns,), tag, body,
                     query, security, refusals, operation_id)

    def decorator(view: Callable) -> Callable:
        converters = {name: PATH_PARAMETERS[name].convert
                      for name in inspect.signature(view).parameters
                      if name in PATH_PARAMETERS and PATH_PARAMETERS[name].convert}
        wrapped = _parsing(view, spec, converters) if body or query or converters else view
        setattr(wrapped, ATTRIBUTE, spec)
        return wrapped

    return decorator


def _parsing(view: Callable, spec: Operation, converters: dict[str, Any]) -> Callable:
    """The view, called with its path parameters converted, then its body and query parsed."""
    parse_body = spec.body.parse if spec.body else None
    parse_query = spec.query.parse if spec.query else None

    @functools.wraps(view)
    def parsed(**kwargs: Any) -> Any:
        for name, convert in converters.items():
            kwargs[name] = convert(kwargs[name])
        request = request_ctx.request  # one context lookup for every read below
        if parse_body is not None:
            kwargs["body"] = parse_body(request)
        if parse_query is not None:
            kwargs["query"] = parse_query(request)
        return view(**kwargs)

    return parsed


def operation_of(view: Callable) -> Operation | None:
    """The Operation a view function declared, if any."""
    return getattr(view, ATTRIBUTE, None)
