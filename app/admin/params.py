"""Strict request parsing for the admin API: every error description starts with the field name.

Bodies are JSON objects whose fields have one type each: a duplicate, an unknown field or a
wrong type (a string for a boolean, or the reverse) is 400 `invalid_request`.
"""
from __future__ import annotations

from typing import Any

from flask import Request
from werkzeug.exceptions import UnsupportedMediaType

from app.errors import InvalidRequest
from app.oauth.params import JSON
from app.oauth.params import MAX_PARAM_LENGTH
from app.oauth.params import json_object_pairs

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
