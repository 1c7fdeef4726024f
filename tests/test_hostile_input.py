"""Hostile input (issue: hardening): every case is a 4xx JSON error, and Baton keeps working."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests import secret_registry

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
LONG = "x" * 5000

TOKEN_CASES = [
    ("empty body", b"", FORM, 400),
    ("no grant_type", b"username=a&password=b", FORM, 400),
    ("empty grant_type", b"grant_type=", FORM, 400),
    ("unknown grant", b"grant_type=implicit", FORM, 400),
    ("grant_type repeated", b"grant_type=password&grant_type=refresh_token", FORM, 400),
    ("username repeated", b"grant_type=password&username=a&username=b&password=c", FORM, 400),
    ("password repeated", b"grant_type=password&username=a&password=b&password=c", FORM, 400),
    ("invalid utf-8 raw", b"grant_type=password&username=\xff\xfe&password=x", FORM, 400),
    ("invalid utf-8 escaped", b"grant_type=password&username=%ff%fe&password=x", FORM, 400),
    ("NUL in username", b"grant_type=password&username=a%00b&password=x", FORM, 400),
    ("NUL in password", b"grant_type=password&username=a&password=x%00", FORM, 400),
    ("NUL in token", b"grant_type=refresh_token&refresh_token=ab%00cd", FORM, 400),
    ("overlong username", f"grant_type=password&username={'u' * 151}&password=x".encode(),
     FORM, 400),
    ("overlong password", f"grant_type=password&username=a&password={'p' * 1025}".encode(),
     FORM, 400),
    ("overlong refresh token", f"grant_type=refresh_token&refresh_token={LONG[:600]}".encode(),
     FORM, 400),
    ("parameter too long", f"grant_type=password&junk={LONG}".encode(), FORM, 400),
    ("bad form syntax", b"grant_type", FORM, 400),
    ("missing refresh token", b"grant_type=refresh_token", FORM, 400),
    ("json array", b'["grant_type", "password"]', JSON, 400),
    ("json string", b'"grant_type=password"', JSON, 400),
    ("json number", b"42", JSON, 400),
    ("json null", b"null", JSON, 400),
    ("json truncated", b'{"grant_type": "password"', JSON, 400),
    ("json integer value", b'{"grant_type": "password", "username": 1, "password": "x"}',
     JSON, 400),
    ("json null value", b'{"grant_type": "password", "username": null, "password": "x"}',
     JSON, 400),
    ("json bool value", b'{"grant_type": true}', JSON, 400),
    ("json list value", b'{"grant_type": ["password"]}', JSON, 400),
    ("json object value", b'{"grant_type": {"a": "b"}}', JSON, 400),
    ("json duplicate key", b'{"grant_type": "password", "grant_type": "refresh_token"}',
     JSON, 400),
    ("json lone surrogate", b'{"grant_type": "password", "username": "\\ud800", "password": "x"}',
     JSON, 400),
    ("json NUL escape", b'{"grant_type": "password", "username": "a\\u0000", "password": "x"}',
     JSON, 400),
    ("json deep nesting", b"[" * 3000 + b"]" * 3000, JSON, 400),
    ("json deep objects", b'{"a":' * 2500 + b"1" + b"}" * 2500, JSON, 400),
    ("json invalid utf-8", b'{"grant_type": "\xff"}', JSON, 400),
    ("json NaN", b'{"grant_type": NaN}', JSON, 400),
    ("text/plain", b"grant_type=password", "text/plain", 415),
    ("multipart", b"--x\r\n\r\n--x--", "multipart/form-data; boundary=x", 415),
    ("xml", b"<grant_type>password</grant_type>", "application/xml", 415),
    ("body over limit", b"grant_type=password&pad=" + b"x" * 17000, FORM, 413),
]

REVOKE_CASES = [
    ("revoke empty", b"", FORM, 400),
    ("revoke no token", b"token_type_hint=refresh_token", FORM, 400),
    ("revoke token repeated", b"token=a&token=b", FORM, 400),
    ("revoke overlong token", f"token={LONG[:600]}".encode(), FORM, 400),
    ("revoke NUL", b"token=a%00", FORM, 400),
    ("revoke json number", b'{"token": 5}', JSON, 400),
    ("revoke wrong type", b"token=a", "text/csv", 415),
]

RESET_CASES = [
    ("reset empty", b"{}", JSON, 400),
    ("reset no password", b'{"token": "abc"}', JSON, 400),
    ("reset empty password", b'{"token": "abc", "new_password": ""}', JSON, 400),
    ("reset garbage token", b'{"token": "abc", "new_password": "new one"}', JSON, 400),
    ("reset number token", b'{"token": 1, "new_password": "new one"}', JSON, 400),
    ("reset overlong password",
     json.dumps({"token": "abc", "new_password": "p" * 1025}).encode(), JSON, 400),
]

CASES = ([("token", *c) for c in TOKEN_CASES] + [("revoke", *c) for c in REVOKE_CASES]
         + [("password/reset", *c) for c in RESET_CASES])


@pytest.mark.parametrize("endpoint, name, body, content_type, status", CASES,
                         ids=[c[1] for c in CASES])
def test_hostile_input_is_a_clear_4xx(client, tokens, endpoint, name, body, content_type,
                                      status):
    response = client.post(f"/v1/tenants/acme/{endpoint}", data=body,
                           content_type=content_type)
    assert response.status_code == status, response.get_data(as_text=True)
    payload = response.get_json()
    assert payload["error"] and payload["error_description"]
    # ... and the service keeps working: a normal login and refresh right after.
    login = tokens.login()
    assert login.status_code == 200
    assert tokens.refresh(login.get_json()["refresh_token"]).status_code == 200


def test_case_table_is_large_enough():
    assert len(CASES) >= 40


header_names = st.sampled_from(["Content-Type", "Content-Length", "Authorization",
                                "X-Request-ID", "X-Forwarded-For", "User-Agent", "Accept",
                                "Transfer-Encoding", "Content-Encoding", "X-Junk"])
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126),
                        max_size=80)
content_types = st.one_of(st.sampled_from([FORM, JSON, "text/plain", "", FORM + "; charset=x",
                                           JSON + "; charset=latin-1"]), header_values)
bodies = st.one_of(
    st.binary(max_size=2048),
    st.text(max_size=512).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.dictionaries(st.sampled_from(["grant_type", "username", "password", "refresh_token",
                                     "token", "x"]),
                    st.one_of(st.text(max_size=64), st.integers(), st.none(),
                              st.lists(st.text(max_size=5), max_size=2)),
                    max_size=5).map(lambda d: json.dumps(d).encode()),
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=bodies, content_type=content_types,
       headers=st.dictionaries(header_names, header_values, max_size=4))
def test_token_endpoint_never_answers_5xx(client, tenant, body, content_type, headers):
    headers = {k: v for k, v in headers.items() if k not in ("Content-Type", "Content-Length")}
    with secret_registry.fuzzing():
        response = client.post("/v1/tenants/acme/token", data=body, content_type=content_type,
                               headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)
    assert response.is_json


def test_request_id_with_trailing_newline_is_replaced(client):
    response = client.get("/healthz", environ_overrides={"HTTP_X_REQUEST_ID": "abc\n"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] != "abc\n"
    assert len(response.headers["X-Request-ID"]) == 32
    kept = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert kept.headers["X-Request-ID"] == "abc-123"


def test_tenant_slug_with_trailing_newline_is_not_found(client, tenant):
    response = client.get("/v1/tenants/acme%0A/jwks.json")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
