"""The inputs an operation declares: a body or a query, parsed into its model.

Each kind reads the request (wire.py), validates it against the model (validation.py) and
knows how the OpenAPI document describes it: its media types and the refusals it brings.
"""
from __future__ import annotations

from abc import ABC
from abc import abstractmethod
from typing import Annotated
from typing import Any
from typing import Generic
from typing import Mapping
from typing import TypeVar
from typing import Union

from flask import Request
from pydantic import BaseModel
from pydantic import Field

from app.errors import InvalidRequest
from app.errors import UnsupportedGrantType
from app.http.answers import Answer
from app.http.answers import refused
from app.http.models import Parameters
from app.http.validation import FIELD_FIRST
from app.http.validation import QUERY
from app.http.validation import RFC6749
from app.http.validation import validate
from app.http.wire import FORM
from app.http.wire import JSON
from app.http.wire import admin_fields
from app.http.wire import oauth_fields
from app.http.wire import query_fields

M = TypeVar("M", bound=BaseModel)

TOO_LARGE = refused(413, "request_too_large", "Body over the limit (16 KiB by default).")


class Body(ABC, Generic[M]):
    """A request body of `model`; `parse` is the whole of what the view receives."""

    media: tuple[str, ...] = (JSON,)
    refusals: tuple[Answer, ...] = ()

    def __init__(self, model: Any, *, name: str | None = None, example: Any = None,
                 required: bool = True) -> None:
        self.model = model  # a model, or a union of models (then `name` names it)
        self.name = name or model.__name__
        self.example = example if example is not None else model_example(model)
        self.required = required

    @abstractmethod
    def parse(self, request: Request) -> M:
        """The request's body as the model, or InvalidRequest."""


class FormOrJson(Body[M]):
    """RFC 6749 parameters, as a form or as a JSON object of strings (SPEC §4.1)."""

    media = (FORM, JSON)
    refusals = (
        refused(400, "invalid_request",
                "Missing, repeated, empty or malformed parameter (RFC 6749 §5.2 shape)."),
        TOO_LARGE,
        refused(415, "unsupported_media_type", "A content type other than form or JSON."),
    )

    def __init__(self, model: type[M], *, example: Any = None) -> None:
        # An absent body is a request without parameters (400 for the missing ones); said
        # so in the document, which also lets client generators offer both media types.
        super().__init__(model, example=example, required=False)

    def parse(self, request: Request) -> M:
        return validate(self.model, oauth_fields(request), RFC6749)


class Grants(FormOrJson[Parameters]):
    """The token request: one model per `grant_type` (a table, not an if-ladder)."""

    def __init__(self, name: str, table: Mapping[str, type[Parameters]], example: Any) -> None:
        super().__init__(Parameters, example=example)
        self.table = dict(table)
        self.model = Annotated[Union[tuple(self.table.values())],
                               Field(discriminator="grant_type")]
        self.name = name

    def parse(self, request: Request) -> Parameters:
        fields = oauth_fields(request)
        grant_type = fields.get("grant_type")
        model = self.table.get(grant_type) if isinstance(grant_type, str) else None
        if model is None:
            validate(Parameters, fields, RFC6749)  # every parameter a bounded string first
            if not grant_type:
                raise InvalidRequest("Missing parameter 'grant_type'.")
            raise UnsupportedGrantType()
        return validate(model, fields, RFC6749)


class JsonFields(Body[M]):
    """An admin API body: a JSON object of typed fields (SPEC §9)."""

    refusals = (
        refused(400, "invalid_request",
                "Malformed JSON, an unknown, repeated or missing field, a wrong type, or a "
                "value the tenant's policy refuses; `error_description` starts with the "
                "field name."),
        TOO_LARGE,
        refused(415, "unsupported_media_type", "A content type other than `application/json`."),
    )

    def parse(self, request: Request) -> M:
        return validate(self.model, admin_fields(request, self.model.model_fields),
                        FIELD_FIRST)


class Query(Generic[M]):
    """An admin API query string of `model`'s parameters."""

    refusals = (
        refused(400, "invalid_request",
                "An unknown, repeated or out-of-range query parameter; `error_description` "
                "starts with its name."),
        # gunicorn's limit_request_line: refused before the application runs, so not JSON.
        Answer(414, "The request line is over 4094 bytes; answered by the HTTP server "
                    "itself (an HTML body).", media="text/html", schema={"type": "string"}),
    )

    def __init__(self, model: type[M]) -> None:
        self.model = model

    def parse(self, request: Request) -> M:
        return validate(self.model, query_fields(request), QUERY)


def model_example(model: Any) -> Any:
    """The first example a model declares (`json_schema_extra={"examples": [...]}`), or None."""
    extra = getattr(model, "model_config", {}).get("json_schema_extra")
    return extra["examples"][0] if isinstance(extra, dict) and extra.get("examples") else None
