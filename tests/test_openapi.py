"""GET /openapi.json: a valid OpenAPI 3.1 document that the live server keeps to (SPEC §4.2)."""
from __future__ import annotations

import hashlib
import json
import uuid

import pytest
import requests
import schemathesis
from flask import Blueprint
from flask import Flask
from flask.typing import ResponseReturnValue
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import ConfigDict
from referencing import Registry
from referencing import Resource
from referencing.jsonschema import DRAFT202012
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.errors import OAuthError
from app.errors import register_error_handlers
from app.extensions import db
from app.http.answers import NO_CONTENT
from app.http.answers import json_answer
from app.http.answers import ok
from app.http.answers import refused
from app.http.inputs import FormOrJson
from app.http.models import AnswerModel
from app.http.models import Error
from app.http.models import Parameters
from app.http.models import Required
from app.http.operations import BEARER
from app.http.operations import operation
from app.openapi import build
from app.openapi import document
from app.services.accounts import users
from app.services.tenancy import admin_keys
from app.services.tenancy import tenants
from tests import secret_registry
from tests.helpers import utcnow
from tests.passkey_helpers import ORIGIN
from tests.passkey_helpers import RP_ID
from tests.signin_helpers import pkce
from tests.soft_authenticator import SoftAuthenticator


def test_document_is_valid_openapi_3_1(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation of the OpenAPI 3.1 schema


def test_document_lists_every_route(app, client) -> None:
    """Every public route of the app is described, with each of its methods (but the admin
    console's HTML pages for people, SPEC §14: no part of the HTTP API)."""
    spec = client.get("/openapi.json").get_json()
    described = {(path, method.upper()) for path, item in spec["paths"].items()
                 for method in item if method != "parameters"}
    served = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("console."):
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


def test_admin_key_operations_declare_scheme_challenges_and_examples(client) -> None:
    """Every admin operation and introspection: the adminKey scheme, 401 and 403 with their
    WWW-Authenticate challenge, and an example for each JSON request body."""
    spec = client.get("/openapi.json").get_json()
    keyed = [(path, method, op) for path, item in spec["paths"].items()
             for method, op in item.items() if method != "parameters"
             if "/admin/" in path or path.endswith("/introspect")]
    assert len(keyed) == 13
    for path, method, op in keyed:
        assert op["security"] == [{"adminKey": []}], (path, method)
        for status in ("401", "403"):
            assert "WWW-Authenticate" in op["responses"][status]["headers"], (path, status)
        for media in op.get("requestBody", {}).get("content", {}).values():
            assert "example" in media, (path, method)


def _resolved(schema: dict) -> dict:
    """A schema whose `$ref`s point into the document resource (urn:baton)."""
    text = json.dumps(schema).replace('"#/components/', '"urn:baton#/components/')
    return json.loads(text)


def _operation_examples(where: str, op: dict):
    for parameter in op.get("parameters", []):
        yield f"{where} {parameter['name']}", parameter["example"], parameter["schema"]
    contents = [(status, answer.get("content", {})) for status, answer in op["responses"].items()]
    contents.append(("body", op.get("requestBody", {}).get("content", {})))
    for status, content in contents:
        for media, described in content.items():
            if "example" in described and media.endswith("json"):
                yield f"{where} {status} {media}", described["example"], described["schema"]


def _examples(spec: dict):
    """(where, example, schema) of every example the document gives."""
    for path, item in spec["paths"].items():
        for parameter in item.get("parameters", []):
            yield f"{path} {parameter['name']}", parameter["example"], parameter["schema"]
        for method, op in item.items():
            if method != "parameters":
                yield from _operation_examples(f"{path} {method}", op)
    for name, schema in spec["components"]["schemas"].items():
        for example in schema.get("examples", []):
            yield name, example, {"$ref": f"#/components/schemas/{name}"}


def test_examples_match_their_schemas() -> None:
    """Every example has the shape its schema states, formats included (ids are UUIDs)."""
    spec = document()
    registry = Registry().with_resource("urn:baton", Resource(spec, DRAFT202012))
    checked = 0
    for where, example, schema in _examples(spec):
        validator = Draft202012Validator(_resolved(schema), registry=registry,
                                         format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [error.message for error in validator.iter_errors(example)]
        assert not errors, (where, example, errors)
        checked += 1
    assert checked > 40


def test_session_ids_are_uuids() -> None:
    """The session id of a path, a token answer and introspection is a UUID (the example
    once said "7")."""
    spec = document()
    schemas = spec["components"]["schemas"]
    for path in ("/v1/tenants/{tenant}/sessions/{session_id}",
                 "/v1/tenants/{tenant}/admin/sessions/{session_id}"):
        session_id = spec["paths"][path]["parameters"][1]
        assert session_id["schema"]["format"] == "uuid"
        assert uuid.UUID(session_id["example"])
    assert schemas["TokenResponse"]["properties"]["session_id"]["format"] == "uuid"
    assert schemas["Introspection"]["properties"]["sid"]["format"] == "uuid"
    assert schemas["Session"]["properties"]["id"]["format"] == "uuid"


def test_a_route_without_an_operation_stops_the_build() -> None:
    described = Flask(__name__, static_folder=None)
    described.add_url_rule("/v1/tenants/<tenant>/new", "undeclared", lambda tenant: "")
    with pytest.raises(LookupError, match="undeclared"):
        build(described.url_map, described.view_functions)


def test_an_undeclared_path_parameter_stops_the_build() -> None:
    described = Flask(__name__, static_folder=None)
    view = operation("New.", returns=NO_CONTENT)(lambda tenant, thing: "")
    described.add_url_rule("/v1/tenants/<tenant>/things/<thing>", "things", view)
    with pytest.raises(LookupError, match="<thing>"):
        build(described.url_map, described.view_functions)


class Greeting(Parameters):
    """A new RFC 6749-style request."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "alice"}]})

    name: Required


class Greeted(AnswerModel):
    """Its answer."""

    greeting: str


class Unfinished(OAuthError):
    """An error whose body carries more than `error` and `error_description`."""

    error = "insufficient_authorization"
    description = "A second factor is required."

    def __init__(self, auth_session: str) -> None:
        super().__init__()
        self.fields = {"auth_session": auth_session, "factors": ["totp"]}


class UnfinishedBody(Error):
    """The body of Unfinished."""

    auth_session: str
    factors: list[str]


def _greetings() -> Flask:
    greetings = Blueprint("greetings", __name__, url_prefix="/v1/tenants/<tenant>")

    @greetings.post("/greet")
    @operation("Greet someone.", tag="demo", body=FormOrJson(Greeting), security=BEARER,
               returns=ok(Greeted, "The greeting."),
               refusals=(refused(400, "insufficient_authorization", "A malformed request, or "
                                 "one more step to take.", model=UnfinishedBody | Error),
                         refused(429, "slow_down", "Too many greetings.")))
    def greet(tenant: str, body: Greeting) -> ResponseReturnValue:
        if body.name == "mallory":
            raise Unfinished("as-1")
        return json_answer(Greeted(greeting=f"hello {body.name}"))

    described = Flask(__name__, static_folder=None)
    described.register_blueprint(greetings)
    register_error_handlers(described)
    return described


def test_a_model_and_a_decorator_make_an_operation() -> None:
    """What docs/design.md promises: a new endpoint is a model and @operation, and the
    document gets its body (form and JSON), answers, refusals and security."""
    described = _greetings()
    spec = build(described.url_map, described.view_functions)
    validate(spec)
    op = spec["paths"]["/v1/tenants/{tenant}/greet"]["post"]
    assert op["operationId"] == "greet" and op["security"] == [{"bearerAuth": []}]
    assert sorted(op["responses"]) == ["200", "400", "401", "404", "413", "415", "429", "503"]
    content = op["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/Greeting"}
    assert content["application/x-www-form-urlencoded"]["example"] == {"name": "alice"}
    assert spec["components"]["schemas"]["Greeting"]["required"] == ["name"]
    refusal = op["responses"]["400"]["content"]["application/json"]["schema"]
    assert {"$ref": "#/components/schemas/UnfinishedBody"} in refusal["anyOf"]

    client = described.test_client()
    assert client.post("/v1/tenants/acme/greet", data={"name": "bob"}).get_json() == {
        "greeting": "hello bob"}
    missing = client.post("/v1/tenants/acme/greet", json={})
    assert missing.get_json()["error_description"] == "Missing parameter 'name'."
    unfinished = client.post("/v1/tenants/acme/greet", json={"name": "mallory"})
    assert unfinished.status_code == 400
    assert unfinished.get_json() == {"error": "insufficient_authorization",
                                     "error_description": "A second factor is required.",
                                     "auth_session": "as-1", "factors": ["totp"]}


# Each operation with valid input; those with a path parameter or a body with invalid too.
OPERATIONS = [(method.upper(), path, mode)
              for path, item in document()["paths"].items()
              for method, operation in item.items() if method != "parameters"
              for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
              if mode is GenerationMode.POSITIVE or "{" in path or "requestBody" in operation]


@pytest.fixture
def fuzz_tenant(app, request) -> str:
    """A tenant and user of this test's own: gunicorn workers cache tenants for a few seconds,
    and the tables are emptied between tests."""
    slug = "fz-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    with app.app_context():
        # Passkeys set up (SPEC §13.5), so their operations answer more than "not set up".
        tenants.create_tenant(tenants.TenantSettings(
            slug, "Fuzz", webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,)), utcnow())
        users.create_user(slug, "fuzzer", "fuzzer password", utcnow())
        db.session.remove()
    return slug


@pytest.fixture
def fuzz_admin_key(app, fuzz_tenant) -> str:
    """An `admin`-scope key of the fuzz tenant, for the admin API and introspection."""
    with app.app_context():
        _, key = admin_keys.create_key(fuzz_tenant, "fuzz", "admin", utcnow())
        db.session.remove()
    secret_registry.remember(key)
    return key


# Invalid input must be refused; 413 (body) and 414 (request line, from gunicorn itself, for
# an over-long query value) are refusals too.
REJECTIONS = [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413", "414"]


@pytest.fixture
def fuzz_schema(live_server):
    """The document as the live gunicorn serves it."""
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {
        "expected-statuses": REJECTIONS}}})
    return schemathesis.openapi.from_url(f"{live_server}/openapi.json", config=config)


def _access_token(base: str, tenant: str) -> str:
    answer = requests.post(f"{base}/v1/tenants/{tenant}/token", timeout=10,
                           data={"grant_type": "password", "username": "fuzzer",
                                 "password": "fuzzer password"})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.mark.slow
@pytest.mark.live
@pytest.mark.parametrize("method, path, mode", OPERATIONS)
def test_live_server_conforms_to_document(fuzz_schema, fuzz_tenant, fuzz_admin_key, live_server,
                                          method, path, mode) -> None:
    """Bounded fuzzing per operation: no 5xx; status, content type, headers and body as
    documented. Valid inputs (positive) and inputs the document forbids (negative)."""
    operation = fuzz_schema[path][method].ok() if hasattr(fuzz_schema[path][method], "ok") \
        else fuzz_schema[path][method]
    # A real tenant, so answers are more than 404s; negative cases without a body make the
    # path itself invalid instead.
    fixed = {"tenant": fuzz_tenant} if "{tenant}" in path else None
    if mode is GenerationMode.NEGATIVE and not operation.body:
        fixed = None
    headers = {}
    security = operation.definition.raw.get("security") or []
    if {"adminKey": []} in security:
        headers["Authorization"] = f"Bearer {fuzz_admin_key}"
    elif security:
        headers["Authorization"] = f"Bearer {_access_token(live_server, fuzz_tenant)}"

    # Negative data goes as JSON where the operation takes JSON: a form carries only strings,
    # so a type violation (a number where a string belongs) cannot be sent as one. The
    # credentials are fixed, not generated: leaving them out is not the violation tested.
    media_type = None
    if mode is GenerationMode.NEGATIVE and any(
            body.media_type == "application/json" for body in operation.body):
        media_type = "application/json"

    @given(case=operation.as_strategy(mode, path_parameters=fixed, headers=headers or None,
                                      media_type=media_type))
    @settings(max_examples=15, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        # RFC 6749 §5.2 answers a well-formed request with wrong credentials 400 invalid_grant,
        # so "schema-valid data must not get a 4xx" does not hold for an OAuth server.
        case.call_and_validate(base_url=live_server, headers=headers,
                               excluded_checks=[positive_data_acceptance])

    with secret_registry.fuzzing():
        check()


def _call(schema, method: str, path: str, base: str, tenant: str, **kwargs):
    """One request built from the document, validated against it (every check)."""
    operation = schema[path][method]
    operation = operation.ok() if hasattr(operation, "ok") else operation
    headers = kwargs.pop("headers", None)
    case = operation.Case(path_parameters={"tenant": tenant, **kwargs.pop("path_values", {})},
                          **kwargs)
    return case.call_and_validate(base_url=base, headers=headers,
                                  excluded_checks=[positive_data_acceptance])


@pytest.mark.live
def test_successful_answers_conform_to_document(fuzz_schema, fuzz_tenant, live_server) -> None:
    """Random input rarely logs in, so the 200s of a real flow are validated explicitly."""
    base = "/v1/tenants/{tenant}"

    def call(method: str, path: str, **kwargs):
        return _call(fuzz_schema, method, path, live_server, fuzz_tenant, **kwargs)

    login = {"grant_type": "password", "username": "fuzzer", "password": "fuzzer password"}
    issued = call("POST", f"{base}/token", body=login,
                  media_type="application/x-www-form-urlencoded").json()
    refreshed = call("POST", f"{base}/token", media_type="application/json",
                     body={"grant_type": "refresh_token",
                           "refresh_token": issued["refresh_token"]}).json()
    bearer = {"Authorization": f"Bearer {refreshed['access_token']}"}
    for path in (f"{base}/userinfo", f"{base}/sessions", f"{base}/jwks.json",
                 f"{base}/.well-known/oauth-authorization-server"):
        assert call("GET", path, headers=bearer).status_code == 200
    other = requests.post(f"{live_server}/v1/tenants/{fuzz_tenant}/token", data=login,
                          timeout=10).json()
    gone = call("DELETE", f"{base}/sessions/{{session_id}}", headers=bearer,
                path_values={"session_id": other["session_id"]})
    assert gone.status_code == 204
    revoked = call("POST", f"{base}/revoke", media_type="application/json",
                   body={"token": refreshed["refresh_token"]})
    assert revoked.status_code == 200
    assert call("GET", f"{base}/userinfo", headers=bearer).status_code == 401


@pytest.mark.live
def test_admin_answers_conform_to_document(fuzz_schema, fuzz_tenant, fuzz_admin_key,
                                           live_server) -> None:
    """The admin API, introspection and metrics on a real flow: each 2xx validated."""
    base = "/v1/tenants/{tenant}"
    admin = {"Authorization": f"Bearer {fuzz_admin_key}"}

    def call(method: str, path: str, **kwargs):
        kwargs.setdefault("headers", admin)
        return _call(fuzz_schema, method, path, live_server, fuzz_tenant, **kwargs)

    created = call("POST", f"{base}/admin/users", media_type="application/json",
                   body={"username": "Bob", "password": "bob's password"})
    assert created.status_code == 201
    user_id = created.json()["id"]
    who = {"user_id": user_id}
    assert call("GET", f"{base}/admin/users", query={"limit": 1}).json()["next_cursor"]
    assert call("GET", f"{base}/admin/users", query={"username": "BOB"}).json()["users"]
    assert call("GET", f"{base}/admin/users/{{user_id}}", path_values=who).status_code == 200
    login = requests.post(f"{live_server}/v1/tenants/{fuzz_tenant}/token", timeout=10, data={
        "grant_type": "password", "username": "bob", "password": "bob's password"}).json()
    secret_registry.remember(login["access_token"])
    secret_registry.remember(login["refresh_token"])
    listed = call("GET", f"{base}/admin/users/{{user_id}}/sessions", path_values=who).json()
    assert [s["id"] for s in listed["sessions"]] == [login["session_id"]]
    active = call("POST", f"{base}/introspect", media_type="application/x-www-form-urlencoded",
                  body={"token": login["access_token"]}).json()
    assert active["active"] is True and active["sub"] == user_id
    assert call("POST", f"{base}/admin/users/{{user_id}}/reset-link", path_values=who,
                media_type="application/json", body={}).status_code == 200
    assert call("PUT", f"{base}/admin/users/{{user_id}}/password", path_values=who,
                media_type="application/json",
                body={"password": "another password"}).status_code == 204
    assert call("PATCH", f"{base}/admin/users/{{user_id}}", path_values=who,
                media_type="application/json", body={"disabled": True}).json()["disabled"]
    assert call("DELETE", f"{base}/admin/users/{{user_id}}/sessions",
                path_values=who).status_code == 204
    gone = call("DELETE", f"{base}/admin/sessions/{{session_id}}",
                path_values={"session_id": login["session_id"]})
    assert gone.status_code == 204  # already revoked: still this tenant's session
    assert call("POST", f"{base}/introspect", media_type="application/json",
                body={"token": login["refresh_token"]}).json() == {"active": False}
    page = call("GET", f"{base}/admin/events", query={"limit": 200}).json()
    assert page["next_after"] is None or page["events"]
    assert call("GET", "/metrics", headers=None).status_code == 200


@pytest.mark.live
def test_passkey_answers_conform_to_document(fuzz_schema, fuzz_tenant, live_server) -> None:
    """SPEC §13.5 on a real flow: the creation options, the new passkey, the request options
    of insufficient_authorization and the code, each validated against the document."""
    base = "/v1/tenants/{tenant}"

    def call(method: str, path: str, **kwargs):
        return _call(fuzz_schema, method, path, live_server, fuzz_tenant, **kwargs)

    bearer = {"Authorization": f"Bearer {_access_token(live_server, fuzz_tenant)}"}
    device = SoftAuthenticator(ORIGIN)
    options = call("POST", f"{base}/mfa/passkeys/options", headers=bearer,
                   media_type="application/json", body={}).json()
    registered = call("POST", f"{base}/mfa/passkeys", headers=bearer,
                      media_type="application/x-www-form-urlencoded",
                      body={"credential": json.dumps(device.create(options)), "name": "key"})
    assert registered.status_code == 201 and len(registered.json()["recovery_codes"]) == 10
    for username in ("fuzzer", None):
        _, challenge = pkce()
        start = {"passkey": "1", "code_challenge": challenge, "code_challenge_method": "S256"}
        if username:
            start["username"] = username
        asked = call("POST", f"{base}/authorize-challenge", media_type="application/json",
                     body=start)
        assert asked.status_code == 400 and asked.json()["webauthn"]["rpId"] == RP_ID
        done = call("POST", f"{base}/authorize-challenge", media_type="application/json",
                    body={"auth_session": asked.json()["auth_session"],
                          "webauthn_response": json.dumps(device.get(asked.json()["webauthn"]))})
        assert done.status_code == 200
