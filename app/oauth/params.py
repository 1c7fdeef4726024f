"""Strict parsing of form and JSON bodies (RFC 6749 §3.2: parameters must not repeat)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qsl

from flask import Request
from werkzeug.exceptions import UnsupportedMediaType

from app.errors import InvalidRequest
from app.errors import UnsupportedGrantType
from app.services.accounts.users import validate_credentials

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


@dataclass(frozen=True)
class PasswordGrant:
    """RFC 6749 §4.3.2."""

    username: str
    password: str


@dataclass(frozen=True)
class RefreshGrant:
    """RFC 6749 §6."""

    refresh_token: str


@dataclass(frozen=True)
class CodeGrant:
    """RFC 6749 §4.1.3 with RFC 7636 §4.5 (SPEC §13.3)."""

    code: str
    code_verifier: str
    client_id: str | None


# RFC 7636 §4.1/§4.2: a verifier or challenge is 43-128 unreserved characters.
PKCE_VALUE = re.compile(r"[A-Za-z0-9._~-]{43,128}")
# RFC 6749 §A.1: client_id is VSCHAR (printable ASCII); Baton keeps it short.
CLIENT_ID = re.compile(r"[\x20-\x7e]{1,255}")


def pkce_value(params: dict[str, str], name: str) -> str:
    """A code_verifier or code_challenge of the right length and alphabet (RFC 7636)."""
    value = require(params, name)
    if not PKCE_VALUE.fullmatch(value):
        raise InvalidRequest(f"Parameter {name!r} must be 43-128 characters of A-Z, a-z, 0-9, "
                             "'-', '.', '_' and '~' (RFC 7636).")
    return value


def client_id(params: dict[str, str]) -> str | None:
    """The optional client_id (the tenant's own app that signs the user in)."""
    value = params.get("client_id")
    if value is None:
        return None
    if not CLIENT_ID.fullmatch(value):
        raise InvalidRequest("Parameter 'client_id' must be 1-255 printable ASCII characters.")
    return value


def _password_grant(params: dict[str, str]) -> PasswordGrant:
    username, password = require(params, "username"), require(params, "password")
    validate_credentials(username, password)  # length limits before any hashing
    return PasswordGrant(username, password)


def _refresh_grant(params: dict[str, str]) -> RefreshGrant:
    return RefreshGrant(bounded(require(params, "refresh_token"), "refresh_token"))


def _code_grant(params: dict[str, str]) -> CodeGrant:
    return CodeGrant(bounded(require(params, "code"), "code"),
                     pkce_value(params, "code_verifier"), client_id(params))


Grant = PasswordGrant | RefreshGrant | CodeGrant
GRANT_TYPES: dict[str, Callable[[dict[str, str]], Grant]] = {
    "password": _password_grant,
    "refresh_token": _refresh_grant,
    "authorization_code": _code_grant,
}


def parse_grant(params: dict[str, str]) -> Grant:
    """The token request's grant, typed; UnsupportedGrantType for any other grant_type."""
    parse = GRANT_TYPES.get(require(params, "grant_type"))
    if parse is None:
        raise UnsupportedGrantType()
    return parse(params)
