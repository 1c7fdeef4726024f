"""Strict reading of bodies and queries: what every blueprint refuses alike.

OAuth bodies are a form or a JSON object of strings (RFC 6749 §3.2: parameters must not
repeat); admin bodies are JSON objects whose fields have one type each, and every admin error
description starts with the field name (SPEC §9).
"""
from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from flask import Request
from werkzeug.exceptions import UnsupportedMediaType

from app.errors import InvalidRequest

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MAX_PARAM_LENGTH = 4096


class _Pairs(list):
    """A JSON object kept as its (name, value) pairs."""


def body_params(request: Request) -> dict[str, str]:
    """The body's parameters as a dict of strings; InvalidRequest for anything malformed."""
    if not request.mimetype and not request.content_length:
        return {}  # an empty POST: report the missing parameters, not the media type
    if request.mimetype not in (FORM, JSON):
        raise UnsupportedMediaType("Use application/x-www-form-urlencoded or application/json.")
    raw = request.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH (413)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The body is not valid UTF-8.") from None
    pairs = _form_pairs(text) if request.mimetype == FORM else _json_pairs(text)
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"Parameter {name!r} is repeated.")
        if "\x00" in name or "\x00" in value:
            raise InvalidRequest("Parameters must not contain NUL characters.")
        if len(value) > MAX_PARAM_LENGTH:
            raise InvalidRequest(f"Parameter {name!r} is too long.")
        params[name] = value
    return params


def _form_pairs(text: str) -> list[tuple[str, str]]:
    if text.lstrip().startswith(("{", "[")):
        # The usual slip: curl -d '{...}' sends JSON with the form content type.
        raise InvalidRequest("The body looks like JSON but is sent as a form: send it with "
                             "Content-Type: application/json.")
    try:
        return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                         encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("The form body is malformed.") from None


def json_object_pairs(text: str, malformed: str = "The JSON body is malformed.",
                      not_object: str = "The JSON body must be an object.") -> list[tuple]:
    """A JSON object's (name, value) pairs in order, duplicates kept; InvalidRequest otherwise."""
    try:
        # Duplicate keys are kept as pairs so they can be refused, not silently merged.
        pairs = json.loads(text, object_pairs_hook=_Pairs)
    except (ValueError, RecursionError):
        if "=" in text and not text.lstrip().startswith(("{", "[")):
            raise InvalidRequest("The body looks like a form but is sent as JSON: send it "
                                 "with Content-Type: application/x-www-form-urlencoded.") from None
        raise InvalidRequest(malformed) from None
    if not isinstance(pairs, _Pairs):
        raise InvalidRequest(not_object)
    return pairs


def _json_pairs(text: str) -> list[tuple[str, str]]:
    pairs = json_object_pairs(text)
    for name, value in pairs:
        if not isinstance(value, str):
            raise InvalidRequest(f"Parameter {name!r} must be a string.")
        try:
            (name + value).encode("utf-8")  # JSON escapes can smuggle in lone surrogates
        except UnicodeEncodeError:
            raise InvalidRequest(f"Parameter {name!r} is not valid Unicode.") from None
    return pairs


def require(params: dict[str, str], name: str) -> str:
    """A parameter that must be present and non-empty."""
    value = params.get(name, "")
    if not value:
        raise InvalidRequest(f"Missing parameter {name!r}.")
    return value


MAX_TOKEN_LENGTH = 512


def bounded(value: str, name: str, limit: int = MAX_TOKEN_LENGTH) -> str:
    if len(value) > limit:
        raise InvalidRequest(f"Parameter {name!r} is too long.")
    return value


TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer"}


def json_body(request: Request, fields: dict[str, type], required: tuple[str, ...] = ()
              ) -> dict[str, Any]:
    """The body's fields, checked against `fields` (name → type); InvalidRequest otherwise."""
    raw = request.get_data(cache=True)  # bounded by MAX_CONTENT_LENGTH (413)
    if not raw and not request.mimetype:
        pairs: list[tuple] = []  # no body at all: only valid when nothing is required
    elif request.mimetype != JSON:
        raise UnsupportedMediaType("Use application/json.")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("body is not valid UTF-8") from None
        pairs = json_object_pairs(text, "body is not valid JSON", "body must be a JSON object")
    values: dict[str, Any] = {}
    for name, value in pairs:
        _check_field(name, value, fields, values)
        values[name] = value
    for name in required:
        if name not in values:
            raise InvalidRequest(f"{name} is required")
    return values


def _check_field(name: str, value: Any, fields: dict[str, type], seen: dict) -> None:
    shown = name[:64]
    if name not in fields:
        raise InvalidRequest(f"{shown} is not a known field (known: {', '.join(fields)})")
    if name in seen:
        raise InvalidRequest(f"{name} is repeated")
    expected = fields[name]
    # bool is an int in Python, and JSON true must not pass for 1 (or the reverse).
    if type(value) is not expected:
        raise InvalidRequest(f"{name} must be {TYPE_NAMES[expected]}")
    if isinstance(value, str):  # expected is str (checked above)
        if "\x00" in value or len(value) > MAX_PARAM_LENGTH:
            raise InvalidRequest(f"{name} must be at most {MAX_PARAM_LENGTH} characters, no NUL")
        try:
            value.encode("utf-8")  # JSON escapes can smuggle in lone surrogates
        except UnicodeEncodeError:
            raise InvalidRequest(f"{name} is not valid Unicode") from None


def query_args(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query string as single values; unknown or repeated parameters are refused."""
    args: dict[str, str] = {}
    for name, values in request.args.lists():
        if name not in allowed:
            raise InvalidRequest(f"{name[:64]} is not a known query parameter "
                                 f"(known: {', '.join(allowed)})")
        if len(values) > 1:
            raise InvalidRequest(f"{name} is repeated")
        if "\x00" in values[0] or len(values[0]) > MAX_PARAM_LENGTH:
            raise InvalidRequest(f"{name} is too long or contains NUL")
        args[name] = values[0]
    return args


def int_arg(args: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}")
    return int(raw)
