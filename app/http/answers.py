"""What views answer, and how an operation describes its answers in the OpenAPI document.

Tokens, users and sessions must not be cached (SPEC §4, RFC 6749 §5.1): `json_answer` sends
the no-store headers unless told otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Mapping

from flask import Response
from flask import jsonify
from pydantic import BaseModel

from app.http.models import Error

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_answer(body: BaseModel, status: int = 200,
                headers: Mapping[str, str] = NO_STORE) -> Response:
    """The answer model as JSON; a field the view left unset is left out."""
    # The model's serializer itself: model_dump() adds half a microsecond of Python around
    # it, on every refresh. jsonify keeps the bytes Flask has always sent (sorted keys).
    data = type(body).__pydantic_serializer__.to_python(body, mode="json", exclude_unset=True)
    response = jsonify(data)
    if status != 200:
        response.status_code = status
    response.headers.update(headers)
    return response


def no_content() -> Response:
    """204 with the no-store headers."""
    return Response(status=204, headers=NO_STORE)


@dataclass(frozen=True)
class Answer:
    """One documented answer of an operation: a status, what it means, its body and headers.

    `model` is a pydantic model (or a union of models) for a JSON body; `schema` a plain JSON
    schema for what is no model (the Prometheus text, this document itself); neither for an
    answer without a body.
    """

    status: int
    description: str
    model: Any = None
    example: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)  # name → description
    media: str = "application/json"
    schema: Mapping[str, Any] | None = None


def ok(model: Any, description: str, *, status: int = 200, example: Any = None,
       headers: Mapping[str, str] | None = None) -> Answer:
    """A success answer with a JSON body (its example: the model's own, unless given)."""
    return Answer(status, description, model, example, headers or {})


def refused(status: int, error: str, description: str,
            headers: Mapping[str, str] | None = None, model: Any = Error) -> Answer:
    """An error answer: the RFC 6749 §5.2 body (or a model extending it) with `error`."""
    return Answer(status, description, model,
                  {"error": error, "error_description": "A sentence for humans."}, headers or {})


NO_CONTENT = Answer(204, "Done; no body.")
RETRY_AFTER = {"Retry-After": "Seconds to wait before retrying."}
INVALID_TOKEN_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
