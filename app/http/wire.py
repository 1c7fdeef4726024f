"""Reading request bodies and queries: the rules below the models.

What a model cannot see is checked here: the media type (415), the body's encoding and
syntax, and names given twice (RFC 6749 §3.2: parameters must not repeat; a JSON object's
duplicate keys are kept as pairs so they can be refused, not silently merged). What the
values may be (types, lengths, NUL, Unicode) is the models' business (app/http/models.py),
so that the OpenAPI document states exactly what is refused.
"""
from __future__ import annotations

import json
from typing import Any
from typing import Iterable
from urllib.parse import unquote

from flask import Request
from werkzeug.exceptions import UnsupportedMediaType

from app.errors import InvalidRequest
from app.http.validation import SHOWN_NAME

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class _Pairs(list):
    """A JSON object kept as its (name, value) pairs."""


def oauth_fields(request: Request) -> dict[str, Any]:
    """RFC 6749 parameters of a form or JSON body, each named once; values as sent."""
    mimetype = request.mimetype
    if not mimetype and not request.content_length:
        return {}  # an empty POST: report the missing parameters, not the media type
    if mimetype != FORM and mimetype != JSON:
        raise UnsupportedMediaType("Use application/x-www-form-urlencoded or application/json.")
    try:
        text = request.get_data(cache=True).decode("utf-8")  # bounded: 413 past the limit
    except UnicodeDecodeError:
        raise InvalidRequest("The body is not valid UTF-8.") from None
    if mimetype == FORM:
        pairs = _form_pairs(text)
    else:
        pairs = json_object_pairs(text)
        _check_json_names(pairs, "Parameter {!r} is not valid Unicode.")
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidRequest(f"Parameter {name!r} is repeated.")
        if "\x00" in name:
            raise InvalidRequest("Parameters must not contain NUL characters.")
        fields[name] = value
    return fields


def _form_pairs(text: str) -> list[tuple[str, str]]:
    """urllib's parse_qsl(strict_parsing=True, errors="strict"), for the few names of a form."""
    if text.lstrip().startswith(("{", "[")):
        # The usual slip: curl -d '{...}' sends JSON with the form content type.
        raise InvalidRequest("The body looks like JSON but is sent as a form: send it with "
                             "Content-Type: application/json.")
    if not text:
        return []
    pairs = []
    try:
        for piece in text.split("&"):
            name, equals, value = piece.partition("=")
            if not equals:  # "a&b" or "a=1&&b=2"
                raise ValueError(piece)
            pairs.append((_unquote(name), _unquote(value)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The form body is malformed.") from None
    return pairs


def _unquote(text: str) -> str:
    if "%" not in text and "+" not in text:
        return text  # the usual parameter: nothing to decode
    return unquote(text.replace("+", " "), encoding="utf-8", errors="strict")


def json_object_pairs(text: str, malformed: str = "The JSON body is malformed.",
                      not_object: str = "The JSON body must be an object.") -> list[tuple]:
    """A JSON object's (name, value) pairs in order, duplicates kept; InvalidRequest otherwise."""
    try:
        pairs = json.loads(text, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        if "=" in text and not text.lstrip().startswith(("{", "[")):
            raise InvalidRequest("The body looks like a form but is sent as JSON: send it "
                                 "with Content-Type: application/x-www-form-urlencoded.") from None
        raise InvalidRequest(malformed) from None
    if not isinstance(pairs, _Pairs):
        raise InvalidRequest(not_object)
    return pairs


def _check_json_names(pairs: list[tuple], refusal: str) -> None:
    """Names are no model's fields, so no model sees them: lone surrogates (JSON escapes can
    smuggle them in) are refused here."""
    for name, _ in pairs:
        if not name.isascii():
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidRequest(refusal.format(name[:SHOWN_NAME])) from None


def admin_fields(request: Request, known: Iterable[str]) -> dict[str, Any]:
    """An admin API body: a JSON object, each field named once (SPEC §9: errors start with
    the field name); no body at all is an empty object. `known`: the model's fields."""
    raw = request.get_data(cache=True)  # bounded: 413 past the limit
    if not raw and not request.mimetype:
        return {}
    if request.mimetype != JSON:
        raise UnsupportedMediaType("Use application/json.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("body is not valid UTF-8") from None
    pairs = json_object_pairs(text, "body is not valid JSON", "body must be a JSON object")
    # A name that is not valid Unicode is no field of any model.
    _check_json_names(pairs, "{} is not a known field (known: " + ", ".join(known) + ")")
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if name in fields:
            raise InvalidRequest(f"{name[:SHOWN_NAME]} is repeated")
        fields[name] = value
    return fields


def query_fields(request: Request) -> dict[str, str]:
    """The query string, each parameter given once."""
    args: dict[str, str] = {}
    for name, values in request.args.lists():
        if len(values) > 1:
            raise InvalidRequest(f"{name[:SHOWN_NAME]} is repeated")
        args[name] = values[0]
    return args
