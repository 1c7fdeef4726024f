"""SPEC §13.5 over HTTP (the Flask test client), a software authenticator standing in for
the browser and the device: registration, a passkey after a password, passwordless sign-in
(with a username or a discoverable credential), and every refusal WebAuthn asks for."""
from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services.accounts import passkeys as passkey_service
from app.services.errors import InvalidSession
from app.services.errors import PasskeyRejected
from app.services.signin import challenge as challenge_service
from tests.factories import make_admin_key
from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import PASSWORD
from tests.helpers import events_of
from tests.helpers import utcnow
from tests.passkey_helpers import ORIGIN
from tests.passkey_helpers import RP_ID
from tests.passkey_helpers import Passkeys
from tests.passkey_helpers import row_counts
from tests.signin_helpers import totp_code
from tests.soft_authenticator import SoftAuthenticator
from tests.soft_authenticator import b64u
from tests.soft_authenticator import unb64u
from tests.test_signin import INVALID_GRANT


@pytest.fixture
def admin_key(app, acme) -> str:
    with app.app_context():
        return make_admin_key("acme")


def claims(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})


def stored_sign_count(app, factor_id: str) -> int:
    with app.app_context():
        value = db.session.execute(sa.text("SELECT sign_count FROM factors WHERE id = :id"),
                                   {"id": int(factor_id)}).scalar()
        db.session.remove()
    return int(value)


# -- registration ------------------------------------------------------------------------------

def test_creation_options_follow_the_tenant_and_the_user(pk, device):
    token = pk.sign_in()["access_token"]
    response = pk.options(token)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    options = response.get_json()
    assert options["rp"] == {"id": RP_ID, "name": "Acme"}
    assert options["user"]["name"] == options["user"]["displayName"] == "alice"
    assert len(options["user"]["id"]) == 43 and len(options["challenge"]) == 43
    assert options["timeout"] == 300_000 and options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert {p["alg"] for p in options["pubKeyCredParams"]} == {-8, -7, -257}
    assert options["excludeCredentials"] == []
    # The user handle stays; every challenge is new; the user's passkeys are excluded.
    registered = pk.register(token, device.create(options)).get_json()
    # Factor changes now need a sign-in with a second factor (mfa in amr).
    assert pk.options(token).get_json()["error"] == "insufficient_user_authentication"
    token = pk.sign_in_with(device, "alice")["access_token"]
    again = pk.options(token).get_json()
    assert again["user"]["id"] == options["user"]["id"]
    assert again["challenge"] != options["challenge"]
    assert again["excludeCredentials"] == [{"id": next(b64u(c) for c in device.credentials),
                                            "type": "public-key", "transports": ["internal"]}]
    assert registered["type"] == "passkey"


def test_registration_adds_a_usable_factor_and_the_first_brings_recovery_codes(app, pk, device):
    token = pk.sign_in()["access_token"]
    first = pk.register(token, device.create(pk.options(token).get_json()), "laptop")
    assert first.status_code == 201 and first.headers["Cache-Control"] == "no-store"
    body = first.get_json()
    assert set(body) == {"id", "type", "name", "created_at", "last_used_at", "recovery_codes"}
    assert (body["type"], body["name"], body["last_used_at"]) == ("passkey", "laptop", None)
    assert len(set(body["recovery_codes"])) == 10
    token = pk.sign_in_with(device, "alice")["access_token"]  # with the factor: mfa in amr
    second = pk.register(token, device.create(pk.options(token).get_json())).get_json()
    assert "recovery_codes" not in second and second["name"] == "Passkey"
    listing = pk.mfa("GET", "", token).get_json()
    assert [(f["id"], f["type"]) for f in listing["factors"]] == [
        (body["id"], "passkey"), (second["id"], "passkey")]
    assert listing["recovery_codes_left"] == 10
    enrolled = events_of(app, "mfa.enrolled")
    assert [e["data"]["type"] for e in enrolled] == ["passkey", "passkey"]
    assert enrolled[0]["actor"] == ("user", "1")


def test_registration_needs_a_recent_sign_in_and_passkeys_set_up(app, ctx, client):
    make_tenant("acme", access_ttl=3600, step_up_max_age=60, webauthn_rp_id=RP_ID,
                webauthn_origins=(ORIGIN,))
    make_tenant("bare")  # no webauthn origin: no passkeys there
    make_user("acme", "alice")
    make_user("bare", "bob")
    from app.services.signin.password_grant import login

    old = login("acme", "alice", PASSWORD, now=utcnow() - timedelta(seconds=120))
    pk = Passkeys(client)
    for response in (pk.options(old.access_token), pk.register(old.access_token, "{}")):
        assert response.status_code == 401
        assert response.get_json()["error"] == "insufficient_user_authentication"
        assert "max_age=60" in response.headers["WWW-Authenticate"]
    bare = Passkeys(client, "bare")
    refused = bare.options(login("bare", "bob", PASSWORD, now=utcnow()).access_token)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    assert "no webauthn origin" in refused.get_json()["error_description"]
    first, _ = bare.passwordless("bob")
    assert first.status_code == 400 and first.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize("knobs, reason", [
    ({"origin": "https://evil.example.net"}, "origin"),
    ({"origin": "https://app.example.com:8443"}, "origin"),
    ({"rp_id": "evil.example.net"}, "RP ID"),
    ({"user_present": False}, "presence"),
    ({"kind": "webauthn.get"}, "type"),
])
def test_a_registration_that_does_not_verify_is_refused(app, pk, device, knobs, reason):
    token = pk.sign_in()["access_token"]
    options = pk.options(token).get_json()
    before = row_counts(app)
    response = pk.register(token, device.create(options, **knobs))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    description = response.get_json()["error_description"]
    assert description.startswith("The passkey could not be verified: ")
    assert reason.lower() in description.lower(), description
    after = row_counts(app)
    # Nothing added; the challenge is spent (single use, right or wrong).
    assert after == {**before, "passkey_registrations": before["passkey_registrations"] - 1}
    retry = pk.register(token, device.create(options))
    assert retry.status_code == 400 and "unknown, used or expired" in retry.get_json()[
        "error_description"]


def test_a_registration_challenge_is_single_use_and_lives_300_seconds(app, pk, device):
    token = pk.sign_in()["access_token"]
    options = pk.options(token).get_json()
    credential = device.create(options)
    assert pk.register(token, credential).status_code == 201
    token = pk.sign_in_with(device, "alice")["access_token"]  # with the factor: mfa in amr
    replayed = pk.register(token, device.create(options))
    assert replayed.status_code == 400 and replayed.get_json()["error"] == "invalid_grant"
    assert "unknown, used or expired" in replayed.get_json()["error_description"]
    late = pk.options(token).get_json()
    with app.app_context(), pytest.raises(PasskeyRejected, match="expired"):
        passkey_service.register("acme", token, json.dumps(device.create(late)), None,
                                 utcnow() + timedelta(seconds=301))
    # Another user's challenge is no challenge of this user.
    with app.app_context():
        make_user("acme", "bob")
    bobs = pk.options(pk.sign_in("bob")["access_token"]).get_json()
    stolen = pk.register(token, device.create(bobs))
    assert stolen.status_code == 400 and "unknown" in stolen.get_json()["error_description"]


def test_a_credential_registers_once_per_tenant(app, pk, device):
    token = pk.sign_in()["access_token"]
    first = device.create(pk.options(token).get_json())
    assert pk.register(token, first).status_code == 201
    token = pk.sign_in_with(device, "alice")["access_token"]  # with the factor: mfa in amr
    # A second key under the same credential id (an authenticator that ignored the
    # exclusion list, or a forgery): the unique (tenant, credential id) refuses it.
    same_id = device.create(pk.options(token).get_json(), credential_id=unb64u(first["rawId"]))
    before = row_counts(app)
    again = pk.register(token, same_id)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_request"
    assert "already registered" in again.get_json()["error_description"]
    assert row_counts(app)["factors"] == before["factors"]


def test_pending_registrations_are_bounded_and_purged(app, pk, device):
    token = pk.sign_in()["access_token"]
    for _ in range(7):
        assert pk.options(token).status_code == 200
    assert row_counts(app)["passkey_registrations"] == passkey_service.MAX_PENDING_REGISTRATIONS
    from app.services.maintenance.purge import purge

    with app.app_context():
        report = purge(utcnow() + timedelta(seconds=301), timedelta(days=7), 2, duty_cycle=1)
        db.session.remove()
    assert report.sign_ins >= passkey_service.MAX_PENDING_REGISTRATIONS
    assert row_counts(app)["passkey_registrations"] == 0


# -- a passkey after the password ---------------------------------------------------------------

def test_a_passkey_answers_after_the_password(app, pk, device, alice):
    first, verifier = pk.start()
    body = first.get_json()
    assert first.status_code == 400 and body["error"] == "insufficient_authorization"
    assert body["factors"] == ["passkey", "recovery_code"]
    options = body["webauthn"]
    assert options["rpId"] == RP_ID and options["timeout"] == 300_000
    assert options["userVerification"] == "preferred"
    assert options["allowCredentials"] == [{"id": next(b64u(c) for c in device.credentials),
                                            "type": "public-key", "transports": ["internal"]}]
    done = pk.answer(body["auth_session"], device.get(options))
    assert done.status_code == 200, done.get_json()
    tokens = pk.redeem(done.get_json()["authorization_code"], verifier).get_json()
    assert claims(tokens["access_token"])["amr"] == ["pwd", "pop", "mfa"]
    factor_id = alice["factor"]["id"]
    assert stored_sign_count(app, factor_id) == 2  # registered at 1, used at 2
    listed = pk.mfa("GET", "", tokens["access_token"]).get_json()["factors"]
    assert listed[0]["last_used_at"] is not None
    # The same answer again: the auth_session is used.
    again = pk.answer(body["auth_session"], device.get(options))
    assert again.get_json()["error"] == "invalid_session"


def test_totp_and_passkey_both_offered(pk, device, alice):
    token = pk.sign_in_with(device, "alice")["access_token"]  # with the factor: mfa in amr
    pk.enrol_totp(token)
    body = pk.start()[0].get_json()
    assert body["factors"] == ["totp", "passkey", "recovery_code"] and "webauthn" in body


def test_a_wrong_passkey_answer_is_a_wrong_answer(app, pk, device, alice):
    """Another origin, another RP ID, no user presence, a bad signature, another
    authenticator: each is invalid_grant and counts; the fifth ends the auth_session."""
    body = pk.start()[0].get_json()
    options = body["webauthn"]
    stranger = SoftAuthenticator(ORIGIN)
    stranger.create({"rp": {"id": RP_ID}, "user": {"id": b64u(b"x" * 32)},
                     "challenge": options["challenge"]})
    tampered = device.get(options)
    tampered["response"]["signature"] = b64u(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    answers = [device.get(options, origin="https://evil.example.net"),
               device.get(options, rp_id="evil.example.net"),
               device.get(options, user_present=False), tampered,
               stranger.get({**options, "allowCredentials": []})]
    for credential in answers:
        response = pk.answer(body["auth_session"], credential)
        assert response.status_code == 400, response.get_json()
        assert response.get_json() == {"error": "invalid_grant",
                                       "error_description": INVALID_GRANT}
    ended = pk.answer(body["auth_session"], device.get(options))
    assert ended.get_json()["error"] == "invalid_session"
    assert len(events_of(app, "mfa.failed")) == 1


def test_a_passkey_answer_needs_a_passkey_challenge(pk, device):
    token = pk.sign_in()["access_token"]
    _, secret, _, _ = pk.enrol_totp(token)
    body = pk.start()[0].get_json()
    assert "webauthn" not in body
    refused = pk.answer(body["auth_session"], json.dumps({"id": "x"}))
    assert refused.get_json()["error"] == "invalid_request"
    # A well-formed one: still refused, not counted; the auth_session stays usable.
    other = SoftAuthenticator(ORIGIN)
    other.create({"rp": {"id": RP_ID}, "user": {"id": b64u(b"u" * 32)}, "challenge": "AA"})
    refused = pk.answer(body["auth_session"], other.get({"rpId": RP_ID, "challenge": "AA"}))
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    done = pk.challenge(auth_session=body["auth_session"], otp=totp_code(secret, steps=1))
    assert done.status_code == 200


# -- passwordless --------------------------------------------------------------------------------

@pytest.mark.parametrize("username", ["alice", "Alice", None])
def test_a_passkey_alone_signs_in(app, pk, device, alice, username):
    first, verifier = pk.passwordless(username, client_id="my-app")
    body = first.get_json()
    assert first.status_code == 400 and body["factors"] == ["passkey"]
    assert set(body) == {"error", "error_description", "auth_session", "factors", "webauthn"}
    allowed = body["webauthn"]["allowCredentials"]
    assert allowed == ([] if username is None else [
        {"id": next(b64u(c) for c in device.credentials), "type": "public-key",
         "transports": ["internal"]}])
    done = pk.answer(body["auth_session"], device.get(body["webauthn"]))
    assert done.status_code == 200, done.get_json()
    tokens = pk.redeem(done.get_json()["authorization_code"], verifier, client_id="my-app")
    token_claims = claims(tokens.get_json()["access_token"])
    assert token_claims["amr"] == ["pop", "mfa"] and token_claims["sub"] == "1"
    sessions = pk.client.get("/v1/tenants/acme/sessions", headers={
        "Authorization": f"Bearer {tokens.get_json()['access_token']}"}).get_json()["sessions"]
    assert [s["amr"] for s in sessions if s["current"]] == [["pop", "mfa"]]


def test_without_user_verification_a_passkey_is_one_factor(pk, alice, device):
    device.user_verified = False
    tokens = pk.sign_in_with(device, "alice")
    assert claims(tokens["access_token"])["amr"] == ["pop"]


def test_required_mfa_requires_user_verification_for_a_passkey_alone(app, pk, device, alice):
    from app.services.tenancy.tenants import update_tenant

    with app.app_context():
        update_tenant("acme", mfa="required")
    first = pk.passwordless("alice")[0].get_json()
    assert first["webauthn"]["userVerification"] == "required"
    unverified = pk.answer(first["auth_session"],
                           device.get(first["webauthn"], user_verified=False))
    assert unverified.get_json()["error"] == "invalid_grant"
    verified = pk.answer(first["auth_session"], device.get(first["webauthn"]))
    assert verified.status_code == 200


def test_a_passwordless_start_is_no_oracle_for_usernames(app, pk, device, alice):
    """Unknown user, user without passkeys, user with passkeys: the same answer shape; a
    username without passkeys gets decoys, the same ones every time."""
    with app.app_context():
        make_user("acme", "bob")
    answers = {name: pk.passwordless(name)[0] for name in ("alice", "bob", "nobody")}
    # (A real user may hold one passkey or several, a decoy user one or two: the number of
    # allowCredentials is no tell, their members are the same.)
    shapes = {name: (r.status_code, sorted(r.get_json()), r.get_json()["factors"],
                     sorted(r.get_json()["webauthn"]),
                     {tuple(sorted(c)) for c in r.get_json()["webauthn"]["allowCredentials"]})
              for name, r in answers.items()}
    assert shapes["alice"] == shapes["bob"] == shapes["nobody"], shapes
    decoys = answers["nobody"].get_json()["webauthn"]["allowCredentials"]
    assert pk.passwordless("nobody")[0].get_json()["webauthn"]["allowCredentials"] == decoys
    assert pk.passwordless("bob")[0].get_json()["webauthn"]["allowCredentials"] != decoys
    for credential in decoys:
        assert 16 <= len(credential["id"]) * 3 // 4 <= 64 and credential["transports"]


def test_an_unknown_usernames_auth_session_ends_after_five_wrong_answers(app, pk, device, alice):
    body = pk.passwordless("nobody")[0].get_json()
    for _ in range(5):  # alice's own passkey, right in every other way, is not nobody's
        wrong = pk.answer(body["auth_session"], device.get({**body["webauthn"],
                                                            "allowCredentials": []}))
        assert wrong.get_json() == {"error": "invalid_grant", "error_description": INVALID_GRANT}
    ended = pk.answer(body["auth_session"], device.get({**body["webauthn"],
                                                        "allowCredentials": []}))
    assert ended.get_json()["error"] == "invalid_session"
    failed = events_of(app, "mfa.failed")
    assert len(failed) == 1 and failed[0]["data"]["user_id"] is None


def test_passwordless_starts_count_against_the_clients_address(app, pk, device, alice):
    """Each start counts as a failed login of the address until a passkey completes it:
    the 31st open start from one address in the window is 429 (BATON_LOGIN_MAX_PER_ADDRESS);
    never the username's counters, so a stranger cannot lock its owner out."""
    limit = app.extensions["baton"].login_limits.per_address
    pk.sign_in_with(device, "alice")  # a completed one gives its count back
    for _ in range(limit):
        assert pk.passwordless("alice")[0].status_code == 400
    throttled = pk.passwordless("alice")[0]
    assert throttled.status_code == 429 and throttled.get_json()["error"] == "slow_down"
    assert int(throttled.headers["Retry-After"]) > 0
    assert [e["data"]["limit"] for e in events_of(app, "login.throttled")] == ["addr"]
    with app.app_context():
        keys = db.session.execute(sa.text("SELECT kind FROM login_attempts")).scalars().all()
        db.session.remove()
    assert "user" not in keys and "user_addr" not in keys


@pytest.mark.parametrize("fields, words", [
    ({"passkey": "2"}, "passkey"),
    ({"passkey": "1", "password": "x"}, "no 'password'"),
    ({"passkey": "1", "username": ""}, "'username'"),
    ({"passkey": "1", "code_challenge": "short"}, "code_challenge"),
    ({"passkey": "1", "code_challenge_method": "plain"}, "code_challenge_method"),
    ({"passkey": "1", "username": " alice"}, "spaces"),
])
def test_a_bad_passwordless_start_is_invalid_request(pk, alice, fields, words):
    response, _ = pk.passwordless(fields.get("username"),
                                  **{k: v for k, v in fields.items() if k != "username"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
    assert words in response.get_json()["error_description"], response.get_json()


def test_a_passwordless_auth_session_takes_only_a_passkey(pk, device, alice):
    body = pk.passwordless("alice")[0].get_json()
    for fields in ({"otp": "123456"}, {"recovery_code": alice["factor"]["recovery_codes"][0]},
                   {"enroll": "totp"}):
        refused = pk.challenge(auth_session=body["auth_session"], **fields)
        assert refused.get_json()["error"] == "invalid_request", fields
    assert pk.answer(body["auth_session"], device.get(body["webauthn"])).status_code == 200


def test_a_discoverable_answer_must_name_its_user(app, pk, device, alice):
    body = pk.passwordless()[0].get_json()
    for handle in (False, b"\x00" * 32):
        refused = pk.answer(body["auth_session"], device.get(body["webauthn"],
                                                             user_handle=handle))
        assert refused.get_json()["error"] == "invalid_grant", handle
    assert pk.answer(body["auth_session"], device.get(body["webauthn"])).status_code == 200


# -- the counter, other tenants, removed factors, disabled users, time --------------------------

def test_a_counter_that_goes_backwards_refuses_and_raises_the_alarm(app, pk, device, alice):
    factor_id = alice["factor"]["id"]
    pk.sign_in_with(device, "alice")  # counter 2
    for backwards in (2, 1, 0):
        body = pk.passwordless("alice")[0].get_json()
        refused = pk.answer(body["auth_session"],
                            device.get(body["webauthn"], sign_count=backwards))
        assert refused.get_json() == {"error": "invalid_grant",
                                      "error_description": INVALID_GRANT}
        # The sign-in is refused: the auth_session ended, whatever comes next.
        assert pk.answer(body["auth_session"], device.get(body["webauthn"], sign_count=50)
                         ).get_json()["error"] == "invalid_session"
    assert stored_sign_count(app, factor_id) == 2
    alarms = events_of(app, "mfa.passkey_clone_suspected")
    assert [(a["data"]["sign_count"], a["data"]["presented_sign_count"]) for a in alarms] == [
        (2, 2), (2, 1), (2, 0)]
    assert alarms[0]["data"]["factor_id"] == factor_id and alarms[0]["actor"][0] == "system"
    assert pk.sign_in_with(device, "alice", sign_count=7)  # forward again: fine


def test_an_authenticator_without_a_counter_is_fine(app, pk):
    counterless = SoftAuthenticator(ORIGIN, first_sign_count=0)
    pk.enrol(pk.sign_in()["access_token"], counterless)
    for _ in range(2):
        pk.sign_in_with(counterless, "alice", sign_count=0)
    assert events_of(app, "mfa.passkey_clone_suspected") == []


def test_another_tenants_credential_is_unknown(app, client, pk, device, alice):
    with app.app_context():
        make_tenant("globex", webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))
        make_user("globex", "alice")
    globex = Passkeys(client, "globex")
    for username in ("alice", None):
        body = globex.passwordless(username)[0].get_json()
        refused = globex.answer(body["auth_session"], device.get({**body["webauthn"],
                                                                  "allowCredentials": []}))
        assert refused.get_json()["error"] == "invalid_grant"


def test_a_removed_passkey_no_longer_answers(app, pk, device, alice, admin_key):
    token = pk.sign_in_with(device, "alice")["access_token"]
    assert pk.mfa("DELETE", f"/{alice['factor']['id']}", token).status_code == 204
    body = pk.passwordless()[0].get_json()
    refused = pk.answer(body["auth_session"], device.get(body["webauthn"]))
    assert refused.get_json()["error"] == "invalid_grant"
    # The admin's "lost phone" removal too.
    token = pk.sign_in()["access_token"]
    pk.enrol(token, device)
    assert pk.client.delete("/v1/tenants/acme/admin/users/1/factors", headers={
        "Authorization": f"Bearer {admin_key}"}).status_code == 204
    body = pk.passwordless()[0].get_json()
    refused = pk.answer(body["auth_session"], device.get(body["webauthn"]))
    assert refused.get_json()["error"] == "invalid_grant"


def test_a_disabled_user_cannot_sign_in_with_a_passkey(app, pk, device, alice, admin_key):
    assert pk.client.patch("/v1/tenants/acme/admin/users/1", json={"disabled": True}, headers={
        "Authorization": f"Bearer {admin_key}"}).status_code == 200
    body = pk.passwordless("alice")[0].get_json()
    refused = pk.answer(body["auth_session"], device.get(body["webauthn"]))
    assert refused.get_json()["error"] == "invalid_grant"


def test_a_passwordless_auth_session_lives_300_seconds(app, pk, device, alice):
    body = pk.passwordless("alice")[0].get_json()
    credential = json.dumps(device.get(body["webauthn"]))
    with app.app_context(), pytest.raises(InvalidSession):
        challenge_service.answer("acme", challenge_service.Answer(
            body["auth_session"], webauthn_response=credential),
            now=utcnow() + timedelta(seconds=301))
    # An answer to one auth_session answers no other (its challenge is that one's).
    other = pk.passwordless("alice")[0].get_json()
    assert pk.answer(other["auth_session"], credential).get_json()["error"] == "invalid_grant"


def test_the_admin_and_the_user_see_passkeys(pk, device, alice, admin_key):
    listed = pk.client.get("/v1/tenants/acme/admin/users/1/factors", headers={
        "Authorization": f"Bearer {admin_key}"}).get_json()
    assert [f["type"] for f in listed["factors"]] == ["passkey"]
    user = pk.client.get("/v1/tenants/acme/admin/users/1", headers={
        "Authorization": f"Bearer {admin_key}"}).get_json()
    assert user["mfa"] is True
    # A passkey is a second factor: the password grant no longer hands out tokens.
    grant = pk.client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": PASSWORD})
    assert grant.status_code == 400 and "second factor" in grant.get_json()["error_description"]
