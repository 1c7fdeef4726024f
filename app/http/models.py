"""Building blocks of the request and answer models (pydantic v2).

Request models are strict: no coercion (a JSON `"true"` is no boolean, `1` is no `true`, a
number is no string), values bounded, NUL and lone surrogates refused. They come in three
kinds, one per way a request carries data:

- `Parameters`: RFC 6749 parameters, a form or a JSON object of strings. Unknown parameters
  are ignored (RFC 6749 §3.1) but must still be bounded strings, like every other.
- `Fields`: an admin API body (SPEC §9), a JSON object: an unknown field is refused.
- `QueryFields`: an admin API query string: an unknown parameter is refused.

Answer models (`AnswerModel`) describe what a view returns; a field a view leaves unset is
absent from the answer (RFC 7662's inactive `{"active": false}`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from typing import Any

from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import GetCoreSchemaHandler
from pydantic import GetJsonSchemaHandler
from pydantic import PlainSerializer
from pydantic import StringConstraints
from pydantic import WithJsonSchema
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import CoreSchema
from pydantic_core import PydanticCustomError
from pydantic_core import core_schema

MAX_PARAM_LENGTH = 4096
MAX_TOKEN_LENGTH = 512
# The one pattern of the models: pydantic checks it (in Rust) and the document states it.
NO_NUL = r"^[^\x00]*$"

# In a type: an optional field that is absent, never null (`x: Param | Absent = None`).
Absent = SkipJsonSchema[None]


def _refuse_null(value: Any) -> Any:
    # An optional parameter may be left out, but a JSON null is a value of the wrong type.
    if value is None:
        raise PydanticCustomError("string_type", "Input should be a valid string")
    return value


# Any value of a request: a bounded string without NUL.
Param = Annotated[str, StringConstraints(max_length=MAX_PARAM_LENGTH, pattern=NO_NUL)]
# A parameter that must be present and non-empty (RFC 6749: an empty value is a missing one).
Required = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PARAM_LENGTH,
                                            pattern=NO_NUL)]
# A token Baton issued (refresh, reset): short, so a long one is refused before any lookup.
TokenParam = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TOKEN_LENGTH,
                                              pattern=NO_NUL)]
# A parameter that may be left out (None), but is a bounded string when sent.
OptionalParam = Annotated[Param | Absent, BeforeValidator(_refuse_null)]


def described(**json_schema: Any) -> Any:
    """Annotated metadata for a rule a service enforces in its own words (the username's
    length, the password policy): stated in the document, checked where the CLI checks it."""
    return Field(json_schema_extra=json_schema)


def example(value: dict[str, Any]) -> dict[str, Any]:
    """A model's `json_schema_extra`: its example, which the document shows."""
    return {"examples": [value]}


class Parameters(BaseModel):
    """RFC 6749 parameters: a form or a JSON object whose values are all strings."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)
    __pydantic_extra__: dict[str, Param]


class Fields(BaseModel):
    """An admin API body: a JSON object of known, typed fields."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class QueryFields(BaseModel):
    """An admin API query string: known parameters, each given once."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


@dataclass(frozen=True)
class IntegerFrom:
    """Annotated metadata for a query integer from `low` to `high`, in ASCII digits only."""

    low: int
    high: int

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(self._parse, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        json_schema = handler(schema)
        json_schema.update(minimum=self.low, maximum=self.high)
        return json_schema

    def _parse(self, value: Any) -> int:
        # int() alone would take " 5", "+5" and other digits than ASCII ones.
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
            value = int(value)
        if type(value) is int and self.low <= value <= self.high:
            return value
        raise PydanticCustomError("refused", "must be an integer from {low} to {high}",
                                  {"low": self.low, "high": self.high})


# A query string value: bounded and without NUL, like a body's.
QueryText = Param


def _iso(moment: datetime) -> str:
    return moment.isoformat()


# An instant of an answer: ISO 8601 with its offset, as datetime.isoformat() writes it.
Timestamp = Annotated[datetime, PlainSerializer(_iso, return_type=str),
                      WithJsonSchema({"type": "string", "format": "date-time"})]
# A URL of an answer (as built, not normalised).
Url = Annotated[str, WithJsonSchema({"type": "string", "format": "uri"})]


class AnswerModel(BaseModel):
    """What a view answers; built by the view, so strict: a wrong type is a bug, not input."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class Error(AnswerModel):
    """RFC 6749 §5.2 error body: every error of the API has this shape."""

    error: str = Field(description="RFC 6749 §5.2 error code.")
    error_description: str = Field(description="A sentence for humans.")
