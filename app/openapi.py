"""The OpenAPI 3.1 description of Baton's HTTP API, served at `GET /openapi.json` (SPEC §4.2).

Generated, not written: every route declares its operation (`@operation`, app.http.operations)
with the models it parses and answers with, and pydantic writes the models' JSON schemas. A
route without a declaration stops the build, so no endpoint is left out; the suite validates
the document, fuzzes a live server from it and generates a client from it.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any
from typing import Iterable

from flask import Blueprint
from flask import Flask
from flask import jsonify
from flask.typing import ResponseReturnValue
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from pydantic.json_schema import JsonSchemaMode
from pydantic_core import core_schema
from werkzeug.routing import Map
from werkzeug.routing import Rule

from app.http.answers import Answer
from app.http.inputs import Body
from app.http.inputs import Query
from app.http.inputs import model_example
from app.http.operations import BLUEPRINTS
from app.http.operations import PATH_PARAMETERS
from app.http.operations import BlueprintDoc
from app.http.operations import Operation
from app.http.operations import Security
from app.http.operations import operation
from app.http.operations import operation_of
from app.http.wire import FORM

bp = Blueprint("openapi", __name__)

COMPONENTS = "#/components/schemas/"
INFO = {"title": "Baton", "version": "1",
        "description": "Multi-tenant token service with race-free refresh-token rotation. "
                       "Errors use the RFC 6749 §5.2 JSON shape."}
_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
_REF = re.compile(r'"\$ref": "([^"]+)"')


class _Schemas(GenerateJsonSchema):
    """pydantic's schemas, without what only adds noise to an API description: per-field
    titles, and `default: null` on optional fields (absent, never null)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> dict[str, Any]:
        json_schema = super().default_schema(schema)
        if "default" in json_schema and json_schema["default"] is None:
            del json_schema["default"]
        return json_schema


class _Models:
    """Every model the operations name, turned into schemas in one pass (shared components)."""

    def __init__(self, routes: Iterable[tuple[Rule, Operation]]) -> None:
        wanted: dict[tuple[Any, JsonSchemaMode], TypeAdapter] = {}
        for rule, spec in routes:
            for model, mode in _models_of(rule, spec):
                wanted.setdefault((model, mode), TypeAdapter(model))
        inputs = [(key, key[1], adapter) for key, adapter in wanted.items()]
        self.refs, definitions = TypeAdapter.json_schemas(
            inputs, ref_template=COMPONENTS + "{model}", schema_generator=_Schemas)
        self.components: dict[str, Any] = dict(definitions.get("$defs", {}))

    def schema(self, model: Any, mode: JsonSchemaMode, name: str | None = None) -> dict:
        """A reference to the model's schema; a union gets a component of its own `name`."""
        schema = self.refs[((model, mode), mode)]
        if "$ref" in schema or name is None:
            return schema
        self.components[name] = schema
        return {"$ref": COMPONENTS + name}

    def form_variant(self, schema: dict) -> dict:
        """The same schema under other component names (`…Form`), so that client generators
        tell the form body from the JSON one by its type."""
        name = schema["$ref"].removeprefix(COMPONENTS)
        target = self.components[name]
        if "oneOf" in target:
            members = [self.form_variant(member) for member in target["oneOf"]]
            variant = {**target, "oneOf": members}
            if "discriminator" in target:
                mapping = {value: self.form_variant({"$ref": ref})["$ref"]
                           for value, ref in target["discriminator"]["mapping"].items()}
                variant["discriminator"] = {**target["discriminator"], "mapping": mapping}
        else:  # a copy: generators flatten an `allOf` of one `$ref` back into its target
            described = target.get("description", name).rstrip(".")
            variant = {**target, "title": name + "Form",
                       "description": f"{described}; sent as a form."}
        self.components[name + "Form"] = variant
        return {"$ref": COMPONENTS + name + "Form"}


def _models_of(rule: Rule, spec: Operation) -> Iterable[tuple[Any, JsonSchemaMode]]:
    if spec.body is not None:
        yield spec.body.model, "validation"
    if spec.query is not None:
        yield spec.query.model, "validation"
    for answer in _answers(spec, rule, _defaults(rule)):
        if answer.model is not None:
            yield answer.model, "serialization"


def _defaults(rule: Rule) -> BlueprintDoc | None:
    """What the route's blueprint declares for all its operations, if anything."""
    return BLUEPRINTS.get(rule.endpoint.rpartition(".")[0])


def _answers(spec: Operation, rule: Rule, defaults: BlueprintDoc | None) -> list[Answer]:
    """Every answer of the operation; a later one replaces an earlier one of its status."""
    found: list[Answer] = []
    for name in _arguments(rule):
        found.extend(PATH_PARAMETERS[name].refusals)
    security = _security(spec, defaults)
    if security is not None:
        found.extend(security.refusals)
    for part in (spec.body, spec.query):
        if part is not None:
            found.extend(part.refusals)
    return [*found, *spec.refusals, *spec.returns]


def _security(spec: Operation, defaults: BlueprintDoc | None) -> Security | None:
    return spec.security or (defaults.security if defaults else None)


def _arguments(rule: Rule) -> list[str]:
    """The rule's path parameters in the order they appear."""
    return _ARGUMENT.findall(rule.rule)


def _answer(answer: Answer, models: _Models) -> dict:
    described: dict[str, Any] = {"description": answer.description}
    if answer.model is not None or answer.schema is not None:
        schema = (models.schema(answer.model, "serialization") if answer.model is not None
                  else dict(answer.schema or {}))
        media: dict[str, Any] = {"schema": schema}
        example = answer.example if answer.example is not None else model_example(answer.model)
        if example is not None:
            media["example"] = example
        described["content"] = {answer.media: media}
    if answer.headers:
        described["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                for name, text in answer.headers.items()}
    return described


def _request_body(body: Body, models: _Models) -> dict:
    schema = models.schema(body.model, "validation", body.name)
    content = {}
    for media in body.media:
        described: dict[str, Any] = {"schema": models.form_variant(schema) if media == FORM
                                     else schema}
        if body.example is not None:
            described["example"] = body.example
        content[media] = described
    request_body: dict[str, Any] = {"required": body.required, "content": content}
    if len(body.media) > 1:
        request_body["description"] = ("A form or a JSON object of strings; without a body, "
                                       "every parameter is missing (400).")
    return request_body


def _query_parameters(query: Query, models: _Models) -> list[dict]:
    schema = models.schema(query.model, "validation")
    target = models.components[schema["$ref"].removeprefix(COMPONENTS)]
    parameters = []
    for name, field in target["properties"].items():
        field = dict(field)
        parameter = {"name": name, "in": "query", "required": name in target.get("required", ()),
                     "description": field.pop("description", "")}
        examples = field.pop("examples", None)
        parameter["schema"] = field
        if examples:
            parameter["example"] = examples[0]
        parameters.append(parameter)
    return parameters


def _operation(spec: Operation, rule: Rule, models: _Models) -> dict:
    view_name = rule.endpoint.rpartition(".")[2]
    defaults = _defaults(rule)
    prefix = defaults.operation_prefix if defaults else ""
    described: dict[str, Any] = {
        "summary": spec.summary,
        "operationId": spec.operation_id or _camel(f"{prefix}_{view_name}" if prefix
                                                   else view_name),
    }
    tag = spec.tag or (defaults.tag if defaults else None)
    if tag:
        described["tags"] = [tag]
    if spec.query is not None:
        described["parameters"] = _query_parameters(spec.query, models)
    if spec.body is not None:
        described["requestBody"] = _request_body(spec.body, models)
    answers = {str(answer.status): _answer(answer, models)
               for answer in _answers(spec, rule, defaults)}
    described["responses"] = dict(sorted(answers.items()))
    security = _security(spec, defaults)
    if security is not None:
        described["security"] = [{security.name: []}]
    return described


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _path_parameter(name: str) -> dict:
    parameter = PATH_PARAMETERS[name]
    return {"name": name, "in": "path", "required": True,
            "description": parameter.description, "schema": dict(parameter.schema),
            "example": parameter.example}


def build(url_map: Map, views: dict[str, Any]) -> dict:
    """The document of every route of `url_map`, from the operations their views declare."""
    routes = []
    for rule in url_map.iter_rules():
        spec = operation_of(views[rule.endpoint])
        if spec is None:
            raise LookupError(f"{rule.endpoint} ({rule.rule}) declares no @operation")
        for name in _arguments(rule):
            if name not in PATH_PARAMETERS:
                raise LookupError(f"path parameter <{name}> of {rule.rule} is not declared "
                                  "(path_parameter)")
        routes.append((rule, spec))
    models = _Models(routes)
    paths: dict[str, dict] = {}
    schemes: dict[str, Any] = {}
    for rule, spec in routes:
        item = paths.setdefault(_ARGUMENT.sub(r"{\1}", rule.rule), {})
        if _arguments(rule):
            item["parameters"] = [_path_parameter(name) for name in _arguments(rule)]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            item[method.lower()] = _operation(spec, rule, models)
        security = _security(spec, _defaults(rule))
        if security is not None:
            schemes[security.name] = dict(security.scheme)
    schemas = _referenced(paths, models.components)
    return {"openapi": "3.1.0", "info": INFO, "paths": paths,
            "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": schemes}}


def _referenced(paths: dict, components: dict[str, Any]) -> dict[str, Any]:
    """The components the paths reference, directly or through other components (a query
    model, spelled out as parameters, is not one of them)."""
    found: dict[str, Any] = {}
    pending = [paths]
    while pending:
        for ref in _REF.findall(json.dumps(pending.pop())):
            name = ref.removeprefix(COMPONENTS)
            if name not in found:
                found[name] = components[name]
                pending.append(found[name])
    return found


@lru_cache(maxsize=1)
def document() -> dict:
    """The whole document (built once: it depends on no setting), /metrics included."""
    from app.api import register_api
    from app.metrics_endpoint import bp as metrics_bp

    described = Flask(__name__, static_folder=None)
    register_api(described)
    described.register_blueprint(bp)  # this document's own endpoint
    described.register_blueprint(metrics_bp)  # served unless BATON_METRICS=0
    return build(described.url_map, described.view_functions)


@bp.get("/openapi.json")
@operation("This document.", tag="operations", operation_id="openapi",
           returns=Answer(200, "OpenAPI 3.1 document.", schema={"type": "object"}))
def openapi_json() -> ResponseReturnValue:
    """GET /openapi.json."""
    response = jsonify(document())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
