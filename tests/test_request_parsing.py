"""Body and query parsing on their own (app/http/wire.py): the strict
rules of SPEC §4 and §9, without a database or a server."""
from __future__ import annotations

import json

import pytest
from flask import Request
from werkzeug.exceptions import UnsupportedMediaType
from werkzeug.test import EnvironBuilder

from app.errors import InvalidRequest
from app.http.wire import MAX_PARAM_LENGTH
from app.http.wire import body_params
from app.http.wire import int_arg
from app.http.wire import json_body
from app.http.wire import query_args
from app.http.wire import require

FORM = "application/x-www-form-urlencoded"


def request(body: str | bytes = b"", content_type: str | None = FORM,
            query: str = "") -> Request:
    builder = EnvironBuilder(method="POST", data=body, content_type=content_type,
                             query_string=query)
    return Request(builder.get_environ())


# --- OAuth bodies (form or JSON, every value a string) -------------------------------------

def test_form_and_json_give_the_same_params() -> None:
    expected = {"grant_type": "password", "username": "alice", "password": ""}
    assert body_params(request("grant_type=password&username=alice&password=")) == expected
    assert body_params(request(json.dumps(expected), "application/json")) == expected


def test_empty_post_without_type_is_no_params() -> None:
    assert body_params(request(b"", None)) == {}


@pytest.mark.parametrize("body, content_type, fragment", [
    ("a=1&a=2", FORM, "repeated"),
    ('{"a": "1", "a": "2"}', "application/json", "repeated"),
    ('{"a": "x"}', FORM, "looks like JSON"),
    ("a=1&b=2", "application/json", "looks like a form"),
    ("[1]", "application/json", "must be an object"),
    ('{"a": 1}', "application/json", "must be a string"),
    ('{"a": "\\ud800"}', "application/json", "not valid Unicode"),
    ("a=%00", FORM, "NUL"),
    (b"a=\xff", FORM, "UTF-8"),
    ("a=" + "x" * (MAX_PARAM_LENGTH + 1), FORM, "too long"),
    ("a=1&&=", FORM, "malformed"),
])
def test_malformed_bodies_are_invalid_request(body: str | bytes, content_type: str,
                                              fragment: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        body_params(request(body, content_type))
    assert fragment in refused.value.description


def test_other_media_types_are_415() -> None:
    with pytest.raises(UnsupportedMediaType):
        body_params(request("<a/>", "application/xml"))


def test_require_refuses_missing_and_empty() -> None:
    assert require({"a": "1"}, "a") == "1"
    for params in ({}, {"a": ""}):
        with pytest.raises(InvalidRequest, match="Missing parameter 'a'"):
            require(params, "a")


# --- admin bodies and queries (typed JSON fields, known names only) ------------------------

FIELDS = {"username": str, "disabled": bool, "limit": int}


def test_json_body_checks_names_and_types() -> None:
    body = '{"username": "bob", "disabled": true, "limit": 3}'
    assert json_body(request(body, "application/json"), FIELDS, ("username",)) == {
        "username": "bob", "disabled": True, "limit": 3}
    assert json_body(request(b"", None), FIELDS) == {}


@pytest.mark.parametrize("body, starts", [
    ('{"nickname": "x"}', "nickname is not a known field"),
    ('{"disabled": 1}', "disabled must be a boolean"),
    ('{"limit": true}', "limit must be an integer"),
    ('{"username": 5}', "username must be a string"),
    ('{"username": "a", "username": "b"}', "username is repeated"),
    ('{"username": "a\\u0000"}', "username must be at most"),
    ('{"disabled": true}', "username is required"),
    ("not json", "body is not valid JSON"),
    ("[]", "body must be a JSON object"),
])
def test_json_body_errors_start_with_the_field(body: str, starts: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        json_body(request(body, "application/json"), FIELDS, ("username",))
    assert refused.value.description.startswith(starts)


def test_json_body_wants_json() -> None:
    with pytest.raises(UnsupportedMediaType):
        json_body(request("username=bob"), FIELDS)


def test_query_args_single_known_values() -> None:
    assert query_args(request(query="limit=5&after=x"), ("limit", "after")) == {
        "limit": "5", "after": "x"}
    for query, starts in (("limit=1&limit=2", "limit is repeated"),
                          ("sort=name", "sort is not a known query parameter"),
                          ("after=%00", "after is too long")):
        with pytest.raises(InvalidRequest) as refused:
            query_args(request(query=query), ("limit", "after"))
        assert refused.value.description.startswith(starts)


@pytest.mark.parametrize("raw", ["0", "101", "-1", "1.5", "٣", " 5", "abc"])
def test_int_arg_range_and_ascii_digits(raw: str) -> None:
    assert int_arg({}, "limit", 50, 1, 100) == 50
    assert int_arg({"limit": "100"}, "limit", 50, 1, 100) == 100
    with pytest.raises(InvalidRequest, match="limit must be an integer from 1 to 100"):
        int_arg({"limit": raw}, "limit", 50, 1, 100)
