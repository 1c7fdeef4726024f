"""SPEC §13.5 under real concurrency: gunicorn with 4 workers, parallel client processes
released together by a Barrier. One passkey answer sent N times at once yields one code;
one registration challenge answered N times at once registers one passkey; a passkey after
the password, answered N times at once, yields one code."""
from __future__ import annotations

import json

import requests

from tests import factories
from tests.parallel import run_together
from tests.passkey_helpers import ORIGIN
from tests.passkey_helpers import RP_ID
from tests.signin_helpers import pkce
from tests.soft_authenticator import SoftAuthenticator
from tests.test_signin_races import PASSWORD
from tests.test_signin_races import post
from tests.test_signin_races import tally

RACERS = 8


def _setup(app, live_server: str, slug: str) -> tuple[str, str]:
    """A tenant with passkeys for `ORIGIN` and alice; (its API base, alice's access token)."""
    with app.app_context():
        factories.make_tenant(slug, webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))
        factories.make_user(slug, "alice", PASSWORD)
    base = f"{live_server}/v1/tenants/{slug}"
    status, tokens = post(f"{base}/token", {"grant_type": "password", "username": "alice",
                                            "password": PASSWORD})
    assert status == 200, tokens
    return base, tokens["access_token"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(url: str, token: str, credential: str) -> tuple[int, dict]:
    response = requests.post(url, data={"credential": credential}, headers=_bearer(token),
                             timeout=30)
    return response.status_code, response.json()


def _enrol(base: str, token: str, device: SoftAuthenticator) -> None:
    options = requests.post(f"{base}/mfa/passkeys/options", headers=_bearer(token),
                            timeout=30).json()
    status, body = register(f"{base}/mfa/passkeys", token, json.dumps(device.create(options)))
    assert status == 201, body


def _passkey_sign_in(base: str, device: SoftAuthenticator) -> str:
    """A passwordless sign-in of alice with `device`; the access token (amr pop, mfa)."""
    verifier, challenge = pkce()
    status, body = post(f"{base}/authorize-challenge", {
        "passkey": "1", "username": "alice", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert status == 400, body
    status, done = post(f"{base}/authorize-challenge", {
        "auth_session": body["auth_session"],
        "webauthn_response": json.dumps(device.get(body["webauthn"]))})
    assert status == 200, done
    status, tokens = post(f"{base}/token", {"grant_type": "authorization_code",
                                            "code": done["authorization_code"],
                                            "code_verifier": verifier})
    assert status == 200, tokens
    return str(tokens["access_token"])


def test_one_registration_challenge_answered_in_parallel_registers_one_passkey(app,
                                                                               live_server):
    base, token = _setup(app, live_server, "pkreg")
    # A second passkey (the first already there): a token that signed in with the first.
    first = SoftAuthenticator(ORIGIN)
    _enrol(base, token, first)
    token = _passkey_sign_in(base, first)
    options = requests.post(f"{base}/mfa/passkeys/options", headers=_bearer(token),
                            timeout=30).json()
    # Eight authenticators answer the same options: one challenge, eight credentials.
    credentials = [json.dumps(SoftAuthenticator(ORIGIN).create(options))
                   for _ in range(RACERS)]
    results = run_together(register, [(f"{base}/mfa/passkeys", token, c)
                                      for c in credentials])
    counts = tally(results)
    assert counts == {"201": 1, "400 invalid_grant": RACERS - 1}, counts
    assert all("unknown, used or expired" in b["error_description"]
               for s, b in results if s == 400)
    listed = requests.get(f"{base}/mfa", headers=_bearer(token), timeout=30).json()
    assert [f["type"] for f in listed["factors"]] == ["passkey", "passkey"]
    print(f"\n[passkey registration race] {RACERS} answers to one challenge: {dict(counts)}")


def test_one_passkey_answer_in_parallel_gives_one_code(app, live_server):
    base, token = _setup(app, live_server, "pkanswer")
    device = SoftAuthenticator(ORIGIN)
    _enrol(base, token, device)
    for username in ("alice", None):
        verifier, challenge = pkce()
        fields = {"passkey": "1", "code_challenge": challenge, "code_challenge_method": "S256"}
        if username:
            fields["username"] = username
        status, body = post(f"{base}/authorize-challenge", fields)
        assert status == 400 and body["factors"] == ["passkey"], body
        answer = {"auth_session": body["auth_session"],
                  "webauthn_response": json.dumps(device.get(body["webauthn"]))}
        results = run_together(post, [(f"{base}/authorize-challenge", answer)] * RACERS)
        counts = tally(results)
        assert counts == {"200": 1, "400 invalid_session": RACERS - 1}, counts
        code = next(b["authorization_code"] for s, b in results if s == 200)
        status, tokens = post(f"{base}/token", {"grant_type": "authorization_code",
                                                "code": code, "code_verifier": verifier})
        assert status == 200, tokens
        print(f"\n[passkey answer race, username={username}] {RACERS} parallel answers: "
              f"{dict(counts)}")


def test_a_passkey_after_the_password_answered_in_parallel_gives_one_code(app, live_server):
    base, token = _setup(app, live_server, "pk2fa")
    device = SoftAuthenticator(ORIGIN)
    _enrol(base, token, device)
    _, challenge = pkce()
    status, body = post(f"{base}/authorize-challenge", {
        "username": "alice", "password": PASSWORD, "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert status == 400 and "passkey" in body["factors"], body
    answer = {"auth_session": body["auth_session"],
              "webauthn_response": json.dumps(device.get(body["webauthn"]))}
    results = run_together(post, [(f"{base}/authorize-challenge", answer)] * RACERS)
    counts = tally(results)
    assert counts == {"200": 1, "400 invalid_session": RACERS - 1}, counts
    print(f"\n[passkey second-factor race] {RACERS} parallel answers: {dict(counts)}")
