"""The one translation of a model's ValidationError into 400 `invalid_request`.

A body with several faults gets the first one in the order the client wrote them (missing
parameters last; what wire.py refuses while reading, such as a name given twice, comes
first), worded for its API: RFC 6749's sentences for the OAuth endpoints
(`Missing parameter 'refresh_token'.`), the field name first for the admin API (SPEC §9:
`disabled must be a boolean`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from typing import Mapping
from typing import TypeVar

from pydantic import BaseModel
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.errors import InvalidRequest
from app.http.models import MAX_PARAM_LENGTH
from app.http.models import NO_NUL

M = TypeVar("M", bound=BaseModel)
SHOWN_NAME = 64  # an unknown name is echoed, but never more of it than this


@dataclass(frozen=True)
class Wording:
    """Sentences by error kind; `{name}` is the field, `{known}` the model's fields, `{msg}`
    the text of a refusal the model words itself (PydanticCustomError "refused")."""

    sentences: Mapping[str, str]
    fallback: str

    def describe(self, error: ErrorDetails, model: type[BaseModel]) -> str:
        if not error["loc"]:  # the model's own check (a model_validator): its own words
            return error["msg"]
        name = str(error["loc"][0])[:SHOWN_NAME]
        sentence = self.sentences.get(_kind(error), self.fallback)
        return sentence.format(name=name, known=", ".join(model.model_fields),
                               msg=error["msg"], max=MAX_PARAM_LENGTH)


def _kind(error: ErrorDetails) -> str:
    kind = error["type"]
    if kind == "string_pattern_mismatch" and (error.get("ctx") or {}).get("pattern") == NO_NUL:
        return "nul"
    return kind


RFC6749 = Wording({
    "missing": "Missing parameter {name!r}.",
    "string_too_short": "Missing parameter {name!r}.",  # an empty value is a missing one
    "string_too_long": "Parameter {name!r} is too long.",
    "string_type": "Parameter {name!r} must be a string.",
    "string_unicode": "Parameter {name!r} is not valid Unicode.",
    "nul": "Parameters must not contain NUL characters.",
    "refused": "Parameter {name!r} {msg}.",
}, "Parameter {name!r} is invalid.")

FIELD_FIRST = Wording({
    "missing": "{name} is required",
    "extra_forbidden": "{name} is not a known field (known: {known})",
    "string_type": "{name} must be a string",
    "bool_type": "{name} must be a boolean",
    "int_type": "{name} must be an integer",
    "string_too_long": "{name} must be at most {max} characters, no NUL",
    "nul": "{name} must be at most {max} characters, no NUL",
    "string_unicode": "{name} is not valid Unicode",
    "refused": "{name} {msg}",
}, "{name} is invalid")

QUERY = Wording({
    "extra_forbidden": "{name} is not a known query parameter (known: {known})",
    "string_too_long": "{name} is too long or contains NUL",
    "nul": "{name} is too long or contains NUL",
    "refused": "{name} {msg}",
}, "{name} is invalid")


def validate(model: type[M], fields: dict[str, Any], wording: Wording) -> M:
    """The model of `fields`, or InvalidRequest describing their first fault."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidRequest(wording.describe(first_fault(exc, fields), model)) from None


def first_fault(exc: ValidationError, fields: dict[str, Any]) -> ErrorDetails:
    """The fault of the field written first; faults of fields not written (missing) after."""
    order = {name: position for position, name in enumerate(fields)}
    last = len(order)

    def position(error: ErrorDetails) -> int:
        loc = error["loc"]
        return order.get(loc[0], last) if loc and isinstance(loc[0], str) else last + 1

    return min(exc.errors(include_url=False), key=position)
