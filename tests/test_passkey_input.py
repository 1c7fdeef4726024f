"""Malformed WebAuthn input at every level (SPEC §13.5, §4.1): the credential JSON, its
members, their base64url, the clientDataJSON, authenticatorData and attestationObject
inside. Each is a clear 400 in the RFC 6749 shape, never a 500, and nothing is written:
no factor, no counted attempt, the challenge or auth_session still good for a right answer.
A fuzzer then mutates valid answers anywhere and checks that nothing answers 5xx."""
from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any
from typing import Callable

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests import secret_registry
from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import PASSWORD
from tests.passkey_helpers import ORIGIN
from tests.passkey_helpers import RP_ID
from tests.passkey_helpers import Passkeys
from tests.passkey_helpers import row_counts
from tests.soft_authenticator import SoftAuthenticator
from tests.soft_authenticator import b64u
from tests.soft_authenticator import unb64u

Mutation = Callable[[dict], Any]


@pytest.fixture
def pk(app, client) -> Passkeys:
    with app.app_context():
        make_tenant("acme", "Acme", webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))
        make_user("acme", "alice", PASSWORD)
    return Passkeys(client)


def _set(path: str, value: Any) -> Mutation:
    """Set (or, with ..., delete) a member at a dotted path of the credential JSON."""
    def mutate(credential: dict) -> dict:
        *parents, last = path.split(".")
        target = credential
        for name in parents:
            target = target[name]
        if value is ...:
            del target[last]
        else:
            target[last] = value
        return credential
    return mutate


def _bytes(path: str, change: Callable[[bytes], bytes]) -> Mutation:
    """Change the bytes of a base64url member."""
    def mutate(credential: dict) -> dict:
        response = credential["response"]
        response[path] = b64u(change(unb64u(response[path])))
        return credential
    return mutate


def _client_data(change: Callable[[dict], Any]) -> Mutation:
    def mutate(credential: dict) -> dict:
        data = json.loads(unb64u(credential["response"]["clientDataJSON"]))
        credential["response"]["clientDataJSON"] = b64u(json.dumps(change(data)).encode())
        return credential
    return mutate


COMMON: list[tuple[str, Mutation]] = [
    ("not JSON", lambda c: "{not json"),
    ("a JSON array", lambda c: "[1, 2]"),
    ("a JSON string", lambda c: '"credential"'),
    ("JSON null", lambda c: "null"),
    ("an empty object", lambda c: "{}"),
    ("no id", _set("id", ...)),
    ("id a number", _set("id", 7)),
    ("no rawId", _set("rawId", ...)),
    ("rawId not base64url", _set("rawId", "!!!not base64!!!")),
    ("rawId empty", lambda c: {**c, "id": "", "rawId": ""}),
    ("rawId over 1023 bytes", lambda c: {**c, "id": b64u(bytes(1024)),
                                         "rawId": b64u(bytes(1024))}),
    ("id and rawId differ", _set("id", b64u(b"another credential"))),
    ("type not public-key", _set("type", "password")),
    ("no response", _set("response", ...)),
    ("response a string", _set("response", "x")),
    ("authenticatorAttachment unknown", _set("authenticatorAttachment", "pocket")),
    ("no clientDataJSON", _set("response.clientDataJSON", ...)),
    ("clientDataJSON a number", _set("response.clientDataJSON", 12)),
    ("clientDataJSON not base64url", _set("response.clientDataJSON", "@@@@")),
    ("clientDataJSON not UTF-8", _bytes("clientDataJSON", lambda b: b"\xff\xfe" + b)),
    ("clientDataJSON truncated", _bytes("clientDataJSON", lambda b: b[:len(b) // 2])),
    ("clientDataJSON an array", _client_data(lambda d: [d])),
    ("clientDataJSON without challenge", _client_data(
        lambda d: {k: v for k, v in d.items() if k != "challenge"})),
    ("clientDataJSON without origin", _client_data(
        lambda d: {k: v for k, v in d.items() if k != "origin"})),
]
REGISTRATION = COMMON + [
    ("no attestationObject", _set("response.attestationObject", ...)),
    ("attestationObject not base64url", _set("response.attestationObject", "%%%")),
    ("attestationObject truncated", _bytes("attestationObject", lambda b: b[:40])),
    ("attestationObject not CBOR", _bytes("attestationObject", lambda b: b"\xff" * 8)),
    ("attestationObject without authData", _bytes(
        "attestationObject", lambda b: bytes.fromhex("a1636674646e6f6e65"))),  # {"fmt": "none"}
]
ASSERTION = COMMON + [
    ("no authenticatorData", _set("response.authenticatorData", ...)),
    ("authenticatorData truncated", _bytes("authenticatorData", lambda b: b[:20])),
    ("authenticatorData with leftover bytes", _bytes("authenticatorData", lambda b: b + b"x")),
    ("no signature", _set("response.signature", ...)),
    ("signature not base64url", _set("response.signature", "a")),
    ("userHandle not base64url", _set("response.userHandle", "***")),
    ("userHandle a number", _set("response.userHandle", 5)),
]


def _as_text(mutated: Any) -> str:
    return mutated if isinstance(mutated, str) else json.dumps(mutated)


def _refused_cleanly(response: Any) -> dict:
    assert response.status_code == 400, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "error_description"} and body["error"] == "invalid_request"
    return body


@pytest.mark.parametrize("name, mutate", REGISTRATION, ids=[n for n, _ in REGISTRATION])
def test_a_malformed_registration_is_invalid_request(app, pk, name, mutate):
    device = SoftAuthenticator(ORIGIN)
    token = pk.sign_in()["access_token"]
    options = pk.options(token).get_json()
    credential = device.create(options)
    before = row_counts(app)
    body = _refused_cleanly(pk.register(token, _as_text(mutate(copy.deepcopy(credential)))))
    assert body["error_description"].startswith("credential"), body
    assert row_counts(app) == before  # nothing written, the challenge not spent
    assert pk.register(token, credential).status_code == 201


@pytest.mark.parametrize("name, mutate", ASSERTION, ids=[n for n, _ in ASSERTION])
def test_a_malformed_passkey_answer_is_invalid_request(app, pk, name, mutate):
    device = SoftAuthenticator(ORIGIN)
    pk.enrol(pk.sign_in()["access_token"], device)
    start = pk.passwordless("alice")[0].get_json()
    credential = device.get(start["webauthn"])
    before = row_counts(app)
    body = _refused_cleanly(pk.answer(start["auth_session"],
                                      _as_text(mutate(copy.deepcopy(credential)))))
    assert body["error_description"].startswith("webauthn_response"), body
    assert row_counts(app) == before  # no attempt counted, nothing else either
    assert pk.answer(start["auth_session"], credential).status_code == 200


def test_an_oversized_answer_is_refused_by_the_model(pk):
    start = pk.passwordless("alice")[0].get_json()
    body = _refused_cleanly(pk.answer(start["auth_session"], "x" * 8193))
    assert "webauthn_response" in body["error_description"]


def test_the_case_tables_cover_every_level():
    assert len(REGISTRATION) >= 25 and len(ASSERTION) >= 25


# -- fuzzing: valid answers mutated anywhere, never a 5xx -----------------------------------

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40),
                   st.text(max_size=40), st.binary(max_size=80).map(b64u),
                   st.lists(st.text(max_size=5), max_size=3),
                   st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        return [prefix] + [p for k, v in value.items() for p in _paths(v, prefix + (k,))]
    return [prefix]


def _mutated(draw: Any, credential: dict) -> str:
    """The credential with one member replaced, deleted, or its bytes cut or flipped."""
    credential = copy.deepcopy(credential)
    if draw(st.booleans()):  # inside the binary members
        name = draw(st.sampled_from(sorted(k for k in credential["response"]
                                           if k not in ("transports",))))
        raw = bytearray(unb64u(credential["response"][name]))
        # Draws never depend on the answer's lengths (keys and signatures are random).
        cut = draw(st.integers(0, 4096)) % (len(raw) + 1)
        if raw and draw(st.booleans()):
            raw[cut % len(raw)] ^= draw(st.integers(1, 255))
        else:
            raw = raw[:cut]
        credential["response"][name] = b64u(bytes(raw))
        return json.dumps(credential)
    path = draw(st.sampled_from(_paths(credential)[1:]))
    target = credential
    for name in path[:-1]:
        target = target[name]
    if draw(st.booleans()):
        del target[path[-1]]
    else:
        target[path[-1]] = draw(LEAVES)
    text = json.dumps(credential)
    return text[:draw(st.integers(0, 4096)) % (len(text) + 1)] if draw(st.booleans()) else text


@pytest.fixture
def unthrottled(app, monkeypatch) -> None:
    """The fuzzer answers many times: lift the answer limits so each answer is verified."""
    runtime = app.extensions["baton"]
    limits = replace(runtime.login_limits, mfa_answers=10**6, mfa_per_user=10**6,
                     per_address=10**6)
    monkeypatch.setitem(app.extensions, "baton", replace(runtime, login_limits=limits))


@pytest.fixture
def enrolled(pk) -> dict:
    """alice's registered device, and her token from a sign-in with it (factor changes
    need `mfa` in amr once she has a factor)."""
    device = SoftAuthenticator(ORIGIN)
    pk.enrol(pk.sign_in()["access_token"], device)
    return {"token": pk.sign_in_with(device, "alice")["access_token"], "device": device}


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_answers_never_answer_5xx(pk, enrolled, unthrottled, data):
    token, device = enrolled["token"], enrolled["device"]
    with secret_registry.fuzzing():
        options = pk.options(token).get_json()
        registration = pk.register(token, _mutated(data.draw, SoftAuthenticator(ORIGIN).create(
            options)))
        if registration.status_code == 201:  # a harmless mutation: stay under 10 factors
            pk.mfa("DELETE", f"/{registration.get_json()['id']}", token)
        start = pk.passwordless(data.draw(st.sampled_from(["alice", None])))[0].get_json()
        answer = pk.answer(start["auth_session"],
                           _mutated(data.draw, device.get(start["webauthn"])))
    for response, right in ((registration, 201), (answer, 200)):
        assert response.status_code in (right, 400), response.get_data(as_text=True)
        assert response.status_code == right or response.get_json()["error"] in (
            "invalid_request", "invalid_grant")

