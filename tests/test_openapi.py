"""GET /openapi.json: a valid OpenAPI 3.1 document that the live server keeps to (SPEC §4.2)."""
from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.extensions import db
from app.openapi import document
from app.services import tenants
from app.services import users
from tests.conftest import utcnow

FUZZ_TENANT = "fuzz"


def test_document_is_valid_openapi_3_1(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema


def test_document_lists_every_route(app, client) -> None:
    """Every public route of the app is described, with each of its methods."""
    spec = client.get("/openapi.json").get_json()
    described = {(path, method.upper()) for path, item in spec["paths"].items()
                 for method in item if method != "parameters"}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = str(rule).replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            served.add((path, method))
    assert served == described


def test_document_declares_security_schemes_and_examples(client) -> None:
    spec = client.get("/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer" and "adminKey" in schemes
    token = spec["paths"]["/v1/tenants/{tenant}/token"]["post"]
    assert token["requestBody"]["content"]["application/x-www-form-urlencoded"]["example"]
    assert spec["paths"]["/v1/tenants/{tenant}/userinfo"]["get"]["security"]


OPERATIONS = [(method.upper(), path) for path, item in document()["paths"].items()
              for method in item if method != "parameters"]


@pytest.fixture
def fuzz_schema(live_server, app):
    """The document as the live gunicorn serves it, with a real tenant and user behind it."""
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings(FUZZ_TENANT, "Fuzz"), utcnow())
        users.create_user(FUZZ_TENANT, "fuzzer", "fuzzer password", utcnow())
        db.session.remove()
    return schemathesis.openapi.from_url(f"{live_server}/openapi.json")


def _access_token(base: str) -> str:
    answer = requests.post(f"{base}/v1/tenants/{FUZZ_TENANT}/token", timeout=10,
                           data={"grant_type": "password", "username": "fuzzer",
                                 "password": "fuzzer password"})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.mark.slow
@pytest.mark.live
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("method, path", OPERATIONS)
def test_live_server_conforms_to_document(fuzz_schema, live_server, method, path, mode) -> None:
    """Bounded fuzzing per operation: no 5xx; status, content type, headers and body as
    documented. Valid inputs (positive) and inputs the document forbids (negative)."""
    operation = fuzz_schema[path][method].ok() if hasattr(fuzz_schema[path][method], "ok") \
        else fuzz_schema[path][method]
    # A real tenant, so answers are more than 404s; negative cases without a body make the
    # path itself invalid instead.
    fixed = {"tenant": FUZZ_TENANT} if "{tenant}" in path else None
    if mode is GenerationMode.NEGATIVE and not operation.body:
        fixed = None
    headers = {}
    if operation.definition.raw.get("security"):
        headers["Authorization"] = f"Bearer {_access_token(live_server)}"

    if mode is GenerationMode.NEGATIVE and "{" not in path and not operation.body:
        pytest.skip("nothing to make invalid")

    @given(case=operation.as_strategy(mode, path_parameters=fixed))
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        # RFC 6749 §5.2 answers a well-formed request with wrong credentials 400 invalid_grant,
        # so "schema-valid data must not get a 4xx" does not hold for an OAuth server.
        case.call_and_validate(base_url=live_server, headers=headers,
                               excluded_checks=[positive_data_acceptance])

    check()


def _call(schema, method: str, path: str, base: str, **kwargs):
    """One request built from the document, validated against it (every check)."""
    operation = schema[path][method]
    operation = operation.ok() if hasattr(operation, "ok") else operation
    headers = kwargs.pop("headers", None)
    case = operation.Case(path_parameters={"tenant": FUZZ_TENANT, **kwargs.pop("path_values", {})},
                          **kwargs)
    return case.call_and_validate(base_url=base, headers=headers,
                                  excluded_checks=[positive_data_acceptance])


@pytest.mark.live
def test_successful_answers_conform_to_document(fuzz_schema, live_server) -> None:
    """Random input rarely logs in, so the 200s of a real flow are validated explicitly."""
    base = "/v1/tenants/{tenant}"
    login = {"grant_type": "password", "username": "fuzzer", "password": "fuzzer password"}
    issued = _call(fuzz_schema, "POST", f"{base}/token", live_server, body=login,
                   media_type="application/x-www-form-urlencoded").json()
    refreshed = _call(fuzz_schema, "POST", f"{base}/token", live_server,
                      body={"grant_type": "refresh_token",
                            "refresh_token": issued["refresh_token"]},
                      media_type="application/json").json()
    bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}
    for path in (f"{base}/userinfo", f"{base}/sessions", f"{base}/jwks.json",
                 f"{base}/.well-known/oauth-authorization-server"):
        assert _call(fuzz_schema, "GET", path, live_server, headers=bearer).status_code == 200
    other = requests.post(f"{live_server}/v1/tenants/{FUZZ_TENANT}/token", data=login,
                          timeout=10).json()
    gone = _call(fuzz_schema, "DELETE", f"{base}/sessions/{{session_id}}", live_server,
                 headers=bearer, path_values={"session_id": other["session_id"]})
    assert gone.status_code == 204
    revoked = _call(fuzz_schema, "POST", f"{base}/revoke", live_server,
                    body={"token": refreshed["refresh_token"]}, media_type="application/json")
    assert revoked.status_code == 200
    assert _call(fuzz_schema, "GET", f"{base}/userinfo", live_server,
                 headers=bearer).status_code == 401
