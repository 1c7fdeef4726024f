"""SPEC §13.1-13.4 over HTTP (the Flask test client): the challenge flow, codes with PKCE,
second factors and their step-up, recovery codes, required MFA, the password grant's new
rules, metadata, tokens, introspection, the admin API and the events."""
from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest

from app.services.signin import challenge as challenge_service
from app.services.signin import codes as code_service
from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import PASSWORD
from tests.helpers import event_types
from tests.helpers import events_of
from tests.helpers import utcnow
from tests.signin_helpers import SignIn
from tests.signin_helpers import pkce
from tests.signin_helpers import totp_code

INVALID_GRANT = "The provided grant is invalid, expired or revoked."


@pytest.fixture
def signin(client, tenant, user) -> SignIn:
    return SignIn(client)


@pytest.fixture
def enrolled(signin) -> dict:
    """alice with a confirmed TOTP factor: her tokens (from before), secret, codes."""
    tokens = signin.sign_in()
    factor_id, secret, codes, spent = signin.enrol_totp(tokens["access_token"])
    return {"tokens": tokens, "factor_id": factor_id, "secret": secret, "codes": codes,
            "spent": spent}


def claims(access_token: str) -> dict:
    return jwt.decode(access_token, options={"verify_signature": False})




# -- without a second factor ----------------------------------------------------------------

def test_password_and_pkce_give_a_code_that_redeems_once(app, signin):
    response, verifier = signin.start(client_id="my-app")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    code = response.get_json()["authorization_code"]
    assert set(response.get_json()) == {"authorization_code"} and len(code) >= 43
    tokens = signin.redeem(code, verifier, client_id="my-app")
    assert tokens.status_code == 200
    body = tokens.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token",
                         "refresh_expires_in", "session_id"}
    assert tokens.headers["Cache-Control"] == "no-store"
    token_claims = claims(body["access_token"])
    assert token_claims["amr"] == ["pwd"]
    assert abs(token_claims["auth_time"] - utcnow().timestamp()) < 10
    # Every refresh keeps auth_time and amr.
    refreshed = signin.client.post("/v1/tenants/acme/token", data={
        "grant_type": "refresh_token", "refresh_token": body["refresh_token"]}).get_json()
    assert claims(refreshed["access_token"])["amr"] == ["pwd"]
    assert claims(refreshed["access_token"])["auth_time"] == token_claims["auth_time"]
    sessions = signin.client.get("/v1/tenants/acme/sessions", headers={
        "Authorization": f"Bearer {refreshed['access_token']}"}).get_json()["sessions"]
    assert sessions[0]["amr"] == ["pwd"] and sessions[0]["client_id"] == "my-app"
    started = events_of(app, "session.started")[-1]["data"]
    assert started["amr"] == ["pwd"] and started["client_id"] == "my-app"


def test_a_code_used_twice_revokes_the_session_it_started(app, signin):
    response, verifier = signin.start()
    code = response.get_json()["authorization_code"]
    first = signin.redeem(code, verifier).get_json()
    second = signin.redeem(code, verifier)
    assert second.status_code == 400
    assert second.get_json() == {"error": "invalid_grant", "error_description": INVALID_GRANT}
    refresh = signin.client.post("/v1/tenants/acme/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert refresh.status_code == 400
    revoked = events_of(app, "session.revoked")
    assert [e["data"]["reason"] for e in revoked] == ["code_replay"]
    assert revoked[0]["data"]["session_id"] == first["session_id"]


@pytest.mark.parametrize("change, error", [
    ({"code_verifier": "x" * 42}, "invalid_request"),  # too short
    ({"code_verifier": "x" * 129}, "invalid_request"),  # too long
    ({"code_verifier": "a" * 43 + "!"}, "invalid_request"),  # outside the alphabet
    ({"code_verifier": "a" * 60}, "invalid_grant"),  # well-formed, wrong
    ({"client_id": "another-app"}, "invalid_grant"),
    ({"code": "not-a-code-" + "x" * 40}, "invalid_grant"),
])
def test_a_bad_redemption_is_refused_and_spends_nothing(signin, change, error):
    response, verifier = signin.start(client_id="my-app")
    code = response.get_json()["authorization_code"]
    fields = {"code": code, "code_verifier": verifier, "client_id": "my-app", **change}
    refused = signin.client.post("/v1/tenants/acme/token",
                                 data={"grant_type": "authorization_code", **fields})
    assert refused.status_code == 400 and refused.get_json()["error"] == error
    # The code was not spent by the bad attempt: the right one still works.
    assert signin.redeem(code, verifier, client_id="my-app").status_code == 200


def test_a_code_lives_60_seconds(ctx, user):
    verifier, challenge = pkce()
    now = utcnow()
    issued = challenge_service.start(
        "acme", challenge_service.FirstRequest("alice", PASSWORD, challenge), now=now)
    from app.services.errors import InvalidCredentials

    with pytest.raises(InvalidCredentials):
        code_service.redeem("acme", issued.authorization_code, verifier, None,
                            now=now + timedelta(seconds=61))
    assert code_service.redeem("acme", issued.authorization_code, verifier, None,
                               now=now + timedelta(seconds=59)).session_id


@pytest.mark.parametrize("fields, message", [
    ({"code_challenge_method": "S256"}, "code_challenge"),
    ({"code_challenge": "c" * 43}, "code_challenge_method"),
    ({"code_challenge": "c" * 43, "code_challenge_method": "plain"}, "code_challenge_method"),
    ({"code_challenge": "c" * 43, "code_challenge_method": "s256"}, "code_challenge_method"),
    ({"code_challenge": "c" * 42, "code_challenge_method": "S256"}, "code_challenge"),
    ({"code_challenge": "c" * 42 + "=", "code_challenge_method": "S256"}, "code_challenge"),
    ({"code_challenge": "c" * 43, "code_challenge_method": "S256", "client_id": "a\x7fb"},
     "client_id"),
])
def test_the_first_request_needs_an_s256_pkce_challenge(signin, fields, message):
    response = signin.challenge(username="alice", password=PASSWORD, **fields)
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request" and message in body["error_description"]


def test_a_wrong_password_gets_the_token_endpoints_answer(signin):
    wrong, _ = signin.start(password="not the password")
    unknown, _ = signin.start(username="nobody")
    token = signin.client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == token.status_code == 400
    assert wrong.get_json() == unknown.get_json() == token.get_json()


def test_the_challenge_endpoint_shares_the_login_throttle(signin):
    """SPEC §11's limits count failures at both endpoints alike (5 per user and address)."""
    for _ in range(3):
        assert signin.start(password="wrong password")[0].status_code == 400
    for _ in range(2):
        assert signin.client.post("/v1/tenants/acme/token", data={
            "grant_type": "password", "username": "alice",
            "password": "wrong password"}).status_code == 400
    throttled, _ = signin.start()  # even the right password now
    assert throttled.status_code == 429
    assert throttled.get_json()["error"] == "slow_down"
    assert int(throttled.headers["Retry-After"]) > 0


# -- factors, step-up, recovery codes ---------------------------------------------------------

def test_enrolment_confirmation_and_listing(app, signin):
    tokens = signin.sign_in()
    token = tokens["access_token"]
    assert signin.mfa("GET", "", token).get_json() == {"factors": [], "recovery_codes_left": 0}
    started = signin.mfa("POST", "/totp", token, data={"name": "phone"})
    assert started.status_code == 201 and started.headers["Cache-Control"] == "no-store"
    body = started.get_json()
    assert set(body) == {"id", "secret", "otpauth_uri"} and len(body["secret"]) == 32
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert "secret=" + body["secret"] in body["otpauth_uri"]
    # Pending: not listed, not usable at sign-in, and the password grant still works.
    assert signin.mfa("GET", "", token).get_json()["factors"] == []
    wrong = signin.mfa("POST", f"/totp/{body['id']}/confirm", token, data={"code": "000000"})
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    right = signin.mfa("POST", f"/totp/{body['id']}/confirm", token,
                       data={"code": totp_code(body["secret"])})
    assert right.status_code == 200
    confirmed = right.get_json()
    assert confirmed["id"] == body["id"] and len(set(confirmed["recovery_codes"])) == 10
    listing = signin.mfa("GET", "", token).get_json()
    assert listing["recovery_codes_left"] == 10
    assert [(f["id"], f["type"], f["name"]) for f in listing["factors"]] == [
        (body["id"], "totp", "phone")]
    assert "secret" not in json.dumps(listing)
    # The password-only session that enrolled the first factor cannot change factors now
    # (the mfa step-up); a sign-in with the factor can, and a second factor brings no second
    # set of codes.
    refused = signin.mfa("POST", "/totp", token, data={})
    assert refused.status_code == 401, refused.get_json()
    assert refused.get_json()["error"] == "insufficient_user_authentication"
    assert "second factor" in refused.get_json()["error_description"]
    token = signin.sign_in(otp_secret=body["secret"])["access_token"]
    second = signin.mfa("POST", "/totp", token, data={})
    again = signin.mfa("POST", f"/totp/{second.get_json()['id']}/confirm", token,
                       data={"code": totp_code(second.get_json()["secret"])}).get_json()
    assert set(again) == {"id"}
    assert events_of(app, "mfa.enrolled")[0]["actor"] == ("user", "1")


def test_a_factor_needs_a_recent_sign_in(app, ctx, client):
    """RFC 9470: a token whose auth_time is older than step_up_max_age cannot change factors
    (401 insufficient_user_authentication with max_age); reading them is fine."""
    make_tenant("acme", access_ttl=3600, step_up_max_age=60)
    make_user("acme", "alice")
    from app.services.signin.password_grant import login

    old = login("acme", "alice", PASSWORD, now=utcnow() - timedelta(seconds=120))
    signin = SignIn(client)
    for method, path in [("POST", "/totp"), ("POST", "/recovery-codes"), ("DELETE", "/1"),
                         ("POST", "/totp/1/confirm")]:
        response = signin.mfa(method, path, old.access_token, data={"code": "123456"})
        assert response.status_code == 401, (method, path)
        assert response.get_json()["error"] == "insufficient_user_authentication"
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer error="insufficient_user_authentication"')
        assert "max_age=60" in challenge
    assert signin.mfa("GET", "", old.access_token).status_code == 200
    fresh = login("acme", "alice", PASSWORD, now=utcnow())
    assert signin.mfa("POST", "/totp", fresh.access_token).status_code == 201


def test_a_stolen_or_revoked_token_cannot_touch_factors(signin, enrolled):
    token = enrolled["tokens"]["access_token"]
    signin.client.post("/v1/tenants/acme/revoke", data={"token": token})
    for method, path in [("GET", ""), ("POST", "/totp"), ("DELETE", f"/{enrolled['factor_id']}")]:
        response = signin.mfa(method, path, token)
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
    assert signin.mfa("GET", "", "not.a.jwt").status_code == 401
    assert signin.client.get("/v1/tenants/acme/mfa").status_code == 401


def test_the_password_grant_refuses_a_user_with_a_second_factor(signin, enrolled):
    right = signin.client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": PASSWORD})
    wrong = signin.client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": "not the password"})
    assert right.status_code == wrong.status_code == 400
    assert right.get_json()["error"] == wrong.get_json()["error"] == "invalid_grant"
    assert "second factor" in right.get_json()["error_description"]
    assert wrong.get_json()["error_description"] == INVALID_GRANT  # no oracle without it


def test_a_second_factor_completes_the_sign_in(app, signin, enrolled):
    first, verifier = signin.start()
    assert first.status_code == 400
    body = first.get_json()
    assert body["error"] == "insufficient_authorization"
    assert body["factors"] == ["totp", "recovery_code"] and len(body["auth_session"]) >= 43
    assert "webauthn" not in body
    # The code of the step spent at confirmation is refused (at most once per factor).
    spent = signin.challenge(auth_session=body["auth_session"], otp=enrolled["spent"])
    assert spent.status_code == 400 and spent.get_json()["error"] == "invalid_grant"
    code = totp_code(enrolled["secret"], steps=1)
    answer = signin.challenge(auth_session=body["auth_session"], otp=code)
    assert answer.status_code == 200
    tokens = signin.redeem(answer.get_json()["authorization_code"], verifier).get_json()
    assert claims(tokens["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    # The auth_session yielded its one code.
    again = signin.challenge(auth_session=body["auth_session"], otp=code)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_session"
    # The same code is not accepted twice, even in a new auth_session.
    other, _ = signin.start()
    replay = signin.challenge(auth_session=other.get_json()["auth_session"], otp=code)
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"


def test_the_fifth_wrong_answer_ends_the_auth_session(app, signin, enrolled):
    first, _ = signin.start(client_id="my-app")
    auth_session = first.get_json()["auth_session"]
    for _ in range(4):
        response = signin.challenge(auth_session=auth_session, otp="000000")
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    fifth = signin.challenge(auth_session=auth_session, recovery_code="aaaa-bbbb-cccc-dddd")
    assert fifth.status_code == 400 and fifth.get_json()["error"] == "invalid_grant"
    ended = signin.challenge(auth_session=auth_session,
                             otp=totp_code(enrolled["secret"], steps=1))
    assert ended.status_code == 400 and ended.get_json()["error"] == "invalid_session"
    failed = events_of(app, "mfa.failed")
    assert len(failed) == 1 and failed[0]["data"]["attempts"] == 5


def test_wrong_answers_are_limited_per_user_across_auth_sessions(app, signin, enrolled):
    """BATON_MFA_MAX_FAILURES_PER_USER (10) wrong answers in the window, then 429 even for
    a right answer in a fresh auth_session."""
    for _ in range(3):
        auth_session = signin.start()[0].get_json()["auth_session"]
        for _ in range(4 if _ < 2 else 2):
            assert signin.challenge(auth_session=auth_session, otp="000000").status_code == 400
    auth_session = signin.start()[0].get_json()["auth_session"]
    throttled = signin.challenge(auth_session=auth_session,
                                 otp=totp_code(enrolled["secret"], steps=1))
    assert throttled.status_code == 429 and throttled.get_json()["error"] == "slow_down"
    assert int(throttled.headers["Retry-After"]) > 0
    assert any(e["data"]["limit"] == "mfa" for e in events_of(app, "login.throttled"))


def test_recovery_codes_are_single_use_and_regenerate(app, signin, enrolled):
    code = enrolled["codes"][0]
    tokens = signin.sign_in(recovery_code=code.upper().replace("-", " "))
    assert claims(tokens["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    used = events_of(app, "mfa.recovery_code_used")
    assert used[0]["data"]["recovery_codes_left"] == 9
    first, _ = signin.start()
    again = signin.challenge(auth_session=first.get_json()["auth_session"], recovery_code=code)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    fresh = signin.mfa("POST", "/recovery-codes", tokens["access_token"])
    assert fresh.status_code == 200 and len(set(fresh.get_json()["recovery_codes"])) == 10
    assert signin.mfa("GET", "", tokens["access_token"]).get_json()["recovery_codes_left"] == 10
    # The old set died.
    old = signin.challenge(auth_session=first.get_json()["auth_session"],
                           recovery_code=enrolled["codes"][1])
    assert old.status_code == 400
    assert "mfa.recovery_codes_regenerated" in event_types(app)


def test_removing_the_last_factor_takes_the_recovery_codes(app, signin, enrolled):
    token = signin.sign_in(recovery_code=enrolled["codes"][0])["access_token"]
    assert signin.mfa("DELETE", "/999999", token).status_code == 404
    assert signin.mfa("DELETE", "/abc", token).status_code == 404
    gone = signin.mfa("DELETE", f"/{enrolled['factor_id']}", token)
    assert gone.status_code == 204
    assert signin.mfa("GET", "", token).get_json() == {"factors": [], "recovery_codes_left": 0}
    assert signin.mfa("POST", "/recovery-codes", token).status_code == 400
    removed = events_of(app, "mfa.removed")
    assert removed[0]["actor"] == ("user", "1") and removed[0]["data"]["type"] == "totp"
    # Without a second factor the password grant works again.
    assert signin.client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice",
        "password": PASSWORD}).status_code == 200


def test_another_users_or_tenants_factor_is_not_found(app, signin, enrolled):
    with app.app_context():
        make_user("acme", "bob")
        make_tenant("globex")
        make_user("globex", "alice")
    bob = signin.sign_in("bob")
    assert signin.mfa("DELETE", f"/{enrolled['factor_id']}", bob["access_token"]).status_code \
        == 404
    confirm = signin.mfa("POST", f"/totp/{enrolled['factor_id']}/confirm", bob["access_token"],
                         data={"code": totp_code(enrolled["secret"], steps=1)})
    assert confirm.status_code == 400  # not bob's pending factor: a wrong code, nothing else
    other = SignIn(signin.client, "globex").sign_in()
    assert signin.mfa("GET", "", other["access_token"]).status_code == 401


def test_an_auth_session_is_the_tenants_own_and_lives_300_seconds(app, ctx, signin, enrolled):
    with app.app_context():
        make_tenant("globex")
    first, _ = signin.start()
    auth_session = first.get_json()["auth_session"]
    foreign = SignIn(signin.client, "globex").challenge(
        auth_session=auth_session, otp=totp_code(enrolled["secret"], steps=1))
    assert foreign.status_code == 400 and foreign.get_json()["error"] == "invalid_session"
    unknown = signin.challenge(auth_session="x" * 43, otp="123456")
    assert unknown.get_json()["error"] == "invalid_session"
    from app.services.errors import InvalidSession

    with pytest.raises(InvalidSession):
        challenge_service.answer("acme", challenge_service.Answer(auth_session, otp="123456"),
                                 now=utcnow() + timedelta(seconds=301))


@pytest.mark.parametrize("fields", [
    {"otp": "123456", "recovery_code": "abcd-efgh-ijkl-mnop"},
    {},
    {"otp": ""},
    {"enroll": "sms"},
    {"otp": "1" * 65},
])
def test_a_follow_up_needs_exactly_one_good_answer(signin, enrolled, fields):
    first, _ = signin.start()
    response = signin.challenge(auth_session=first.get_json()["auth_session"], **fields)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request", response.get_json()


def test_bad_bodies_are_clear_errors(signin):
    url = "/v1/tenants/acme/authorize-challenge"
    cases = [
        signin.client.post(url, data="username=a&username=b", content_type=(
            "application/x-www-form-urlencoded")),
        signin.client.post(url, json={"username": "alice", "password": 5}),
        signin.client.post(url, data="{not json", content_type="application/json"),
        signin.client.post(url, json=["username"]),
        signin.client.post(url, data="<x/>", content_type="application/xml"),
        signin.client.post(url, data="a=" + "b" * 20000,
                           content_type="application/x-www-form-urlencoded"),
        signin.client.get(url),
    ]
    assert [c.status_code for c in cases] == [400, 400, 400, 400, 415, 413, 405]
    for response in cases:
        assert set(response.get_json()) == {"error", "error_description"}


# -- tenant policy: required MFA, the password grant switch -----------------------------------

def test_required_mfa_enrols_inside_the_flow(app, client, ctx):
    make_tenant("acme", mfa="required")
    make_user("acme", "alice")
    signin = SignIn(client)
    first, verifier = signin.start()
    assert first.status_code == 400
    body = first.get_json()
    assert body["error"] == "insufficient_authorization"
    assert body["factors"] == [] and body["enroll"] == ["totp"]
    offered = signin.challenge(auth_session=body["auth_session"], enroll="totp")
    assert offered.status_code == 200
    enrolment = offered.get_json()
    assert set(enrolment) == {"auth_session", "secret", "otpauth_uri"}
    assert enrolment["auth_session"] == body["auth_session"]
    retry = signin.challenge(auth_session=body["auth_session"], enroll="totp")
    assert retry.get_json()["secret"] == enrolment["secret"]  # a retry gets the same one
    done = signin.challenge(auth_session=body["auth_session"],
                            otp=totp_code(enrolment["secret"]))
    assert done.status_code == 200
    result = done.get_json()
    assert len(result["recovery_codes"]) == 10
    tokens = signin.redeem(result["authorization_code"], verifier).get_json()
    assert claims(tokens["access_token"])["amr"] == ["pwd", "otp", "mfa"]
    assert signin.mfa("GET", "", tokens["access_token"]).get_json()["recovery_codes_left"] == 10
    # The password grant never hands out tokens under required MFA.
    refused = client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": PASSWORD})
    assert refused.status_code == 400 and "second factor" in refused.get_json()[
        "error_description"]


def test_enrolment_is_not_offered_to_a_user_who_can_answer(signin, enrolled):
    first, _ = signin.start()
    offered = signin.challenge(auth_session=first.get_json()["auth_session"], enroll="totp")
    assert offered.status_code == 400 and offered.get_json()["error"] == "invalid_request"


def test_the_password_grant_can_be_turned_off(app, client, ctx):
    make_tenant("acme", password_grant=False)
    make_user("acme", "alice")
    refused = client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": PASSWORD})
    assert refused.status_code == 400
    assert refused.get_json()["error"] == "unsupported_grant_type"
    meta = client.get("/v1/tenants/acme/.well-known/oauth-authorization-server").get_json()
    assert "password" not in meta["grant_types_supported"]
    assert "authorization_code" in meta["grant_types_supported"]
    assert SignIn(client).sign_in()["access_token"]


# -- introspection, the admin API ------------------------------------------------------------

def test_introspection_shows_auth_time_and_amr(signin, enrolled, admin):
    tokens = signin.sign_in(otp_secret=enrolled["secret"])
    for token, kind in ((tokens["access_token"], "access_token"),
                        (tokens["refresh_token"], "refresh_token")):
        answer = admin.client.post("/v1/tenants/acme/introspect", data={"token": token},
                                   headers={"Authorization": f"Bearer {admin.key}"}).get_json()
        assert answer["active"] and answer["token_type"] == kind
        assert answer["amr"] == ["pwd", "otp", "mfa"] and isinstance(answer["auth_time"], int)


def test_admin_sees_and_removes_factors(app, signin, enrolled, admin):
    user = admin("GET", "/users/1").get_json()
    assert user["mfa"] is True
    listed = admin("GET", "/users/1/factors").get_json()
    assert listed["recovery_codes_left"] == 10 and listed["factors"][0]["type"] == "totp"
    assert admin("GET", "/users/999/factors").status_code == 404
    assert admin("DELETE", "/users/1/factors").status_code == 204
    assert admin("GET", "/users/1").get_json()["mfa"] is False
    # A lost phone: every session of the user is revoked too.
    assert signin.client.post("/v1/tenants/acme/token", data={
        "grant_type": "refresh_token",
        "refresh_token": enrolled["tokens"]["refresh_token"]}).status_code == 400
    removed = events_of(app, "mfa.removed")
    assert removed[-1]["actor"][0] == "admin_key"
    assert "session.revoked" in event_types(app)


def test_a_new_user_has_no_second_factor_whoever_else_has_one(app, enrolled, admin):
    # The created user's view once asked "has any user a factor?" (an uncorrelated EXISTS in
    # the INSERT's RETURNING): true here because alice has one, in any tenant.
    created = admin.create_user("newcomer")
    assert created.status_code == 201 and created.get_json()["mfa"] is False
    assert admin("GET", f"/users/{created.get_json()['id']}").get_json()["mfa"] is False
    with app.app_context():
        make_tenant("globex", "Globex")
        assert make_user("globex", "gina", PASSWORD).mfa is False
