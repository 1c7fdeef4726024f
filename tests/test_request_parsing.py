"""Body and query parsing on their own (app/http: wire.py reads, the models validate,
validation.py words the refusal): the strict rules of SPEC §4 and §9, without a database or
a server."""
from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import parse_qsl

import pytest
from flask import Request
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.test import EnvironBuilder

from app.errors import InvalidRequest
from app.errors import UnsupportedGrantType
from app.http.inputs import FormOrJson
from app.http.inputs import JsonFields
from app.http.inputs import Query
from app.http.models import MAX_PARAM_LENGTH
from app.http.models import Absent
from app.http.models import Fields
from app.http.models import IntegerFrom
from app.http.models import Param
from app.http.models import QueryFields
from app.http.models import QueryText
from app.http.wire import _form_pairs
from app.oauth.models import TOKEN_REQUEST
from app.oauth.models import RefreshTokenGrant
from app.oauth.models import RevokeRequest
from app.services.errors import InvalidInput

FORM = "application/x-www-form-urlencoded"


def request(body: str | bytes = b"", content_type: str | None = FORM,
            query: str = "") -> Request:
    builder = EnvironBuilder(method="POST", data=body, content_type=content_type,
                             query_string=query)
    return Request(builder.get_environ())


# --- OAuth bodies (form or JSON, every value a string) -------------------------------------

REVOKE = FormOrJson(RevokeRequest)


def test_form_and_json_give_the_same_model() -> None:
    expected = {"token": "abc", "token_type_hint": "", "client_id": "web"}
    from_form = REVOKE.parse(request("token=abc&token_type_hint=&client_id=web"))
    from_json = REVOKE.parse(request(json.dumps(expected), "application/json"))
    assert from_form == from_json
    assert from_form.model_dump() == expected  # unknown parameters kept, and ignored
    assert REVOKE.parse(request("token=abc")).token_type_hint is None


def test_empty_post_without_type_is_no_params() -> None:
    with pytest.raises(InvalidRequest, match=r"^Missing parameter 'token'\.$"):
        REVOKE.parse(request(b"", None))


@pytest.mark.parametrize("body, content_type, description", [
    ("a=1&a=2", FORM, "Parameter 'a' is repeated."),
    ('{"a": "1", "a": "2"}', "application/json", "Parameter 'a' is repeated."),
    ('{"a": "x"}', FORM, "The body looks like JSON but is sent as a form: send it with "
                         "Content-Type: application/json."),
    ("a=1&b=2", "application/json", "The body looks like a form but is sent as JSON: send it "
                                    "with Content-Type: application/x-www-form-urlencoded."),
    ("[1]", "application/json", "The JSON body must be an object."),
    ("{", "application/json", "The JSON body is malformed."),
    ('{"a": 1}', "application/json", "Parameter 'a' must be a string."),
    ('{"token": null}', "application/json", "Parameter 'token' must be a string."),
    ('{"token": "t", "token_type_hint": null}', "application/json",
     "Parameter 'token_type_hint' must be a string."),
    ('{"a": "\\ud800"}', "application/json", "Parameter 'a' is not valid Unicode."),
    ('{"\\ud800": "a"}', "application/json", "Parameter '\\ud800' is not valid Unicode."),
    ("a=%00", FORM, "Parameters must not contain NUL characters."),
    ("a%00=1", FORM, "Parameters must not contain NUL characters."),
    (b"a=\xff", FORM, "The body is not valid UTF-8."),
    ("a=%ff", FORM, "The form body is malformed."),
    ("a=" + "x" * (MAX_PARAM_LENGTH + 1), FORM, "Parameter 'a' is too long."),
    ("token=" + "x" * 513, FORM, "Parameter 'token' is too long."),
    ("a=1&&=", FORM, "The form body is malformed."),
    ("token=", FORM, "Missing parameter 'token'."),
    # Several faults: the first one written wins, missing parameters come last.
    ("b=%00&a=" + "x" * (MAX_PARAM_LENGTH + 1), FORM,
     "Parameters must not contain NUL characters."),
    ("a=" + "x" * (MAX_PARAM_LENGTH + 1) + "&b=%00", FORM, "Parameter 'a' is too long."),
])
def test_malformed_bodies_are_invalid_request(body: str | bytes, content_type: str,
                                              description: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        REVOKE.parse(request(body, content_type))
    assert refused.value.description == description


def test_other_media_types_are_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        REVOKE.parse(request("<a/>", "application/xml"))


@pytest.mark.parametrize("body, description", [
    ("", "Missing parameter 'grant_type'."),
    ("grant_type=", "Missing parameter 'grant_type'."),
    ('{"grant_type": true}', "Parameter 'grant_type' must be a string."),
    ('{"grant_type": ["password"]}', "Parameter 'grant_type' must be a string."),
    ("grant_type=implicit&x=%00", "Parameters must not contain NUL characters."),
    ("grant_type=refresh_token", "Missing parameter 'refresh_token'."),
    ("grant_type=password&password=x", "Missing parameter 'username'."),
    ("grant_type=password&username=%20a&password=x",
     "username must not contain surrounding spaces or NUL"),
])
def test_token_request_refusals(body: str, description: str) -> None:
    content_type = "application/json" if body.startswith("{") else FORM
    # The username's rules are the service's (InvalidInput), in its words: 400 too.
    with pytest.raises((InvalidRequest, InvalidInput)) as refused:
        TOKEN_REQUEST.parse(request(body, content_type))
    assert str(refused.value) == description


def test_token_request_picks_the_grant_model() -> None:
    grant = TOKEN_REQUEST.parse(request("grant_type=refresh_token&refresh_token=abc"))
    assert grant == RefreshTokenGrant(grant_type="refresh_token", refresh_token="abc")
    with pytest.raises(UnsupportedGrantType):
        TOKEN_REQUEST.parse(request("grant_type=implicit"))


@given(st.text(alphabet="ab=&%+2fF0é ", max_size=12))
def test_form_reading_is_urllib_strict_parsing(text: str) -> None:
    """The hand-written form reader (the refresh hot path) agrees with urllib's parse_qsl in
    strict mode on every body: the same pairs, or a refusal where urllib raises."""
    try:
        expected = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                             encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError):
        with pytest.raises(InvalidRequest):
            _form_pairs(text)
        return
    assert _form_pairs(text) == expected


# --- admin bodies and queries (typed JSON fields, known names only) ------------------------

class Sample(Fields):
    username: Param | Absent = None
    disabled: bool = False
    limit: int = 0


class NeedsUsername(Fields):
    username: Param
    disabled: bool = False
    limit: int = 0


def test_json_body_checks_names_and_types() -> None:
    body = '{"username": "bob", "disabled": true, "limit": 3}'
    parsed = JsonFields(Sample).parse(request(body, "application/json"))
    assert parsed == Sample(username="bob", disabled=True, limit=3)
    assert JsonFields(Sample).parse(request(b"", None)) == Sample()


@pytest.mark.parametrize("body, description", [
    ('{"nickname": "x"}', "nickname is not a known field (known: username, disabled, limit)"),
    ('{"disabled": 1}', "disabled must be a boolean"),
    ('{"disabled": "true"}', "disabled must be a boolean"),
    ('{"limit": true}', "limit must be an integer"),
    ('{"limit": 1.0}', "limit must be an integer"),
    ('{"username": 5}', "username must be a string"),
    ('{"username": "a", "username": "b"}', "username is repeated"),
    ('{"username": "a\\u0000"}', "username must be at most 4096 characters, no NUL"),
    ('{"username": "\\ud800"}', "username is not valid Unicode"),
    ('{"username": "a", "\\ud800": 1}',
     "\ud800 is not a known field (known: username, disabled, limit)"),
    ('{"disabled": true}', "username is required"),
    ('{"limit": "x", "nickname": 1}', "limit must be an integer"),
    ("not json", "body is not valid JSON"),
    ("[]", "body must be a JSON object"),
    (b'{"username": "\xff"}', "body is not valid UTF-8"),
])
def test_json_body_errors_start_with_the_field(body: str | bytes, description: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        JsonFields(NeedsUsername).parse(request(body, "application/json"))
    assert refused.value.description == description


def test_json_body_wants_json() -> None:
    with pytest.raises(UnsupportedMediaType):
        JsonFields(Sample).parse(request("username=bob"))


class Page(QueryFields):
    limit: Annotated[int, IntegerFrom(1, 100)] = 50
    after: QueryText | Absent = None


def test_query_single_known_values() -> None:
    assert Query(Page).parse(request(query="limit=5&after=x")) == Page(limit=5, after="x")
    assert Query(Page).parse(request()) == Page(limit=50)
    for query, description in (
            ("limit=1&limit=2", "limit is repeated"),
            ("sort=name", "sort is not a known query parameter (known: limit, after)"),
            ("after=%00", "after is too long or contains NUL"),
            (f"after={'x' * (MAX_PARAM_LENGTH + 1)}", "after is too long or contains NUL")):
        with pytest.raises(InvalidRequest) as refused:
            Query(Page).parse(request(query=query))
        assert refused.value.description == description


@pytest.mark.parametrize("raw", ["0", "101", "-1", "1.5", "٣", " 5", "+5", "abc", "",
                                 "9" * 30])
def test_query_integers_in_range_and_ascii_digits(raw: str) -> None:
    assert Query(Page).parse(request(query="limit=100")).limit == 100
    with pytest.raises(InvalidRequest, match="^limit must be an integer from 1 to 100$"):
        Query(Page).parse(request(query=f"limit={raw}"))


def test_query_integer_schema_states_its_range() -> None:
    schema = Page.model_json_schema()["properties"]["limit"]
    assert (schema["type"], schema["minimum"], schema["maximum"]) == ("integer", 1, 100)


class Described(Fields):
    name: Annotated[Param, Field(description="A name.")]


def test_unknown_field_names_are_echoed_bounded() -> None:
    body = json.dumps({"n" * 1000: 1})
    with pytest.raises(InvalidRequest) as refused:
        JsonFields(Described).parse(request(body, "application/json"))
    assert refused.value.description == "n" * 64 + " is not a known field (known: name)"
