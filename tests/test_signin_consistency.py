"""SPEC §13: a sign-in in progress, and the factor changes of its user, stay consistent with
what happens to that user meanwhile: a password change, a disable, a logout everywhere, a
factor confirmed or removed on the side. Each test forces one interleaving (a thread held
at a known point of the other transaction) against the real database."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pyotp
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Factor
from app.models import RecoveryCode
from app.runtime import runtime
from app.services.accounts import factors
from app.services.accounts import recovery_codes
from app.services.accounts import users
from app.services.audit import events
from app.services.errors import InsufficientAuthorization
from app.services.errors import InvalidCredentials
from app.services.errors import InvalidSession
from app.services.errors import SecondFactorRequired
from app.services.errors import StepUpRequired
from app.services.errors import TooManyAttempts
from app.services.signin import challenge as challenge_service
from app.services.signin import codes as code_service
from app.services.signin import password_grant
from app.services.tenancy import tenants
from app.services.tenancy.lookup import forget
from app.services.tenancy.lookup import lookup_tenant
from app.services.tokens import family
from app.services.unit_of_work import transaction
from tests.factories import make_session
from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import PASSWORD
from tests.helpers import event_types
from tests.helpers import utcnow
from tests.parallel import interleave
from tests.passkey_helpers import ORIGIN
from tests.passkey_helpers import RP_ID
from tests.passkey_helpers import Passkeys
from tests.signin_helpers import SignIn
from tests.signin_helpers import pkce
from tests.soft_authenticator import SoftAuthenticator


def _user_with_totp(slug: str = "acme", username: str = "alice"):
    """A user with a confirmed TOTP factor; (user, secret, recovery codes)."""
    user = make_user(slug, username, PASSWORD)
    now = utcnow()
    with transaction():
        tenant = lookup_tenant(slug)
        enrolment = factors.start_totp(tenant, user.id, username, None, now)
        confirmed = factors.finish_totp(
            tenant, user.id, enrolment.id,
            pyotp.TOTP(enrolment.secret).at(now - timedelta(seconds=30)), now, events.CLI)
    db.session.remove()
    return user, enrolment.secret, confirmed.recovery_codes


def _open_challenge(now=None) -> tuple[str, str]:
    """The first request for alice; (auth_session, code_verifier)."""
    verifier, code_challenge = pkce()
    with pytest.raises(InsufficientAuthorization) as started:
        challenge_service.start("acme", challenge_service.FirstRequest(
            "alice", PASSWORD, code_challenge), now=now or utcnow())
    db.session.remove()
    return started.value.auth_session, verifier


def _answer(auth_session: str, now=None, **answer):
    return challenge_service.answer(
        "acme", challenge_service.Answer(auth_session, **answer), now=now or utcnow())


@pytest.mark.parametrize("change", ["password", "disable", "logout_everywhere"])
def test_a_change_to_the_user_ends_the_challenge_in_progress(app, ctx, change):
    """The password was right when the challenge opened; a password change, a disable or a
    logout everywhere meanwhile revokes every session, and the sign-in in progress ends
    with them: its right answer is invalid_grant, not a session for the old password."""
    make_tenant("acme")
    _, _, codes = _user_with_totp()
    auth_session, _ = _open_challenge()
    now = utcnow()
    if change == "password":
        users.set_password("acme", "alice", "a brand new password", now)
    elif change == "disable":
        users.disable_user("acme", "alice", now)
    else:
        users.logout_everywhere("acme", "alice", now)
    db.session.remove()
    with pytest.raises(InvalidSession):
        _answer(auth_session, recovery_code=codes[0])
    with transaction():
        assert db.session.execute(sa.text(
            "SELECT state FROM challenge_sessions")).scalar_one() == "ended"
        assert db.session.execute(sa.text(
            "SELECT count(*) FROM recovery_codes WHERE used_at IS NOT NULL")).scalar() == 0


def test_a_password_reset_by_hash_ends_the_challenge_too(app, ctx):
    """Even a change that revokes nothing (the row's hash rewritten directly) ends it: the
    answer compares the password fingerprint the challenge opened with."""
    make_tenant("acme")
    _, _, codes = _user_with_totp()
    auth_session, _ = _open_challenge()
    with transaction():
        db.session.execute(sa.text("UPDATE users SET password_hash = :h"),
                           {"h": runtime().passwords.hash("another password")})
    db.session.remove()
    with pytest.raises(InvalidSession):
        _answer(auth_session, recovery_code=codes[0])


def test_a_factor_confirmed_while_the_password_grant_hashes_is_seen(app, ctx, monkeypatch):
    """The password grant decides 'needs a second factor' under its share lock of the user
    row, after the hash: a factor confirmed while the hash ran refuses the grant."""
    make_tenant("acme")
    user = make_user("acme", "alice", PASSWORD)
    rt = runtime()
    real_verify = rt.passwords.verify

    def verify_then_enrol(hash_, password):
        ok = real_verify(hash_, password)

        def enrol():
            with app.app_context():
                now = utcnow()
                with transaction():
                    tenant = lookup_tenant("acme")
                    started = factors.start_totp(tenant, user.id, "alice", None, now)
                    factors.finish_totp(tenant, user.id, started.id,
                                        pyotp.TOTP(started.secret).at(now), now, events.CLI)
                db.session.remove()
        side = threading.Thread(target=enrol)
        side.start()
        side.join()
        return ok

    monkeypatch.setattr(rt.passwords, "verify", verify_then_enrol)
    with pytest.raises(SecondFactorRequired):
        password_grant.login("acme", "alice", PASSWORD, now=utcnow())
    with transaction():
        assert db.session.execute(sa.text("SELECT count(*) FROM sessions")).scalar() == 0


def test_an_answer_waits_for_an_admin_removing_the_factors(app, ctx, monkeypatch):
    """An admin's remove-all (user row FOR UPDATE, then the factors) and an answer (the user
    row first, then the challenge and the factor) take their locks in one order: no deadlock
    (40P01, a 503), and the answer, which waited, finds its challenge ended."""
    make_tenant("acme")
    user, secret, _ = _user_with_totp()
    auth_session, _ = _open_challenge()
    results = interleave(
        app, monkeypatch, family, "revoke_all_for_user",
        lambda: factors.remove_all("acme", user.id, utcnow(), events.CLI),
        lambda: _answer(auth_session, otp=pyotp.TOTP(secret).now()))
    assert results["first"] == 1, results
    assert isinstance(results["second"], InvalidSession), results


def test_an_enrolment_in_the_flow_and_a_delete_run_one_after_the_other(app, ctx, monkeypatch):
    """mfa=required: the flow confirms a pending TOTP factor while the user (with a session
    from before the policy) deletes that factor. The delete waits for the user row; by then
    the factor is confirmed and the caller's session proved no second factor, so the
    delete is refused and the factor keeps its recovery codes."""
    make_tenant("acme")
    make_user("acme", "alice", PASSWORD)
    token = make_session("acme", "alice").access_token  # a session from before the policy
    tenants.update_tenant("acme", mfa="required")
    forget()
    db.session.remove()
    auth_session, _ = _open_challenge()
    offered = _answer(auth_session, enroll="totp")
    db.session.remove()
    with transaction():
        pending_id = db.session.execute(sa.select(Factor.id)).scalar_one()
    results = interleave(
        app, monkeypatch, recovery_codes, "replace_codes",
        lambda: _answer(auth_session, otp=pyotp.TOTP(offered.secret).now()),
        lambda: factors.delete_own("acme", token, pending_id, utcnow()))
    assert results["first"].authorization_code, results
    assert isinstance(results["second"], StepUpRequired), results
    with transaction():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Factor)).scalar() == 1
        assert db.session.execute(
            sa.select(sa.func.count()).select_from(RecoveryCode)).scalar() == 10
    assert "mfa.removed" not in event_types(app)


def test_two_deletes_of_one_factor_remove_it_once(app, ctx, client):
    """DELETE … RETURNING under the user lock: two deletes of one factor, one 204 and one
    404, one mfa.removed event."""
    make_tenant("acme")
    _, secret, _ = _user_with_totp()
    signin = SignIn(client)
    token = signin.sign_in(otp_secret=secret)["access_token"]
    with transaction():
        factor_id = db.session.execute(sa.select(Factor.id)).scalar_one()
    db.session.remove()
    statuses = []

    def delete():
        with app.test_client() as own:
            statuses.append(SignIn(own).mfa("DELETE", f"/{factor_id}", token).status_code)
    both = [threading.Thread(target=delete) for _ in range(2)]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join(20)
    assert sorted(statuses) == [204, 404]
    assert event_types(app).count("mfa.removed") == 1


def test_a_password_only_session_cannot_change_the_factors_of_a_user_who_has_one(
        app, ctx, client):
    """Once the user has a second factor, changing factors needs a sign-in that used one
    (`mfa` in amr): 401 insufficient_user_authentication, the factors untouched."""
    make_tenant("acme")
    make_user("acme", "alice", PASSWORD)
    token = make_session("acme", "alice").access_token  # password only
    signin = SignIn(client)
    factor_id, secret, _, _ = signin.enrol_totp(token)  # the first factor: allowed
    for method, path in [("POST", "/totp"), ("POST", "/recovery-codes"),
                         ("DELETE", f"/{factor_id}")]:
        refused = signin.mfa(method, path, token, data={})
        assert refused.status_code == 401, (method, path, refused.get_json())
        assert refused.get_json()["error"] == "insufficient_user_authentication"
    assert len(signin.mfa("GET", "", token).get_json()["factors"]) == 1
    fresh = signin.sign_in(otp_secret=secret)["access_token"]
    assert signin.mfa("DELETE", f"/{factor_id}", fresh).status_code == 204


def test_a_rehashed_password_still_redeems_its_code(app, ctx, monkeypatch):
    """An outdated hash is rehashed at sign-in; the code carries the fingerprint of the hash
    as stored after the rehash, so it redeems."""
    make_tenant("acme")
    make_user("acme", "alice", PASSWORD)
    monkeypatch.setattr(runtime().passwords, "needs_rehash", lambda hash_: True)
    verifier, code_challenge = pkce()
    issued = challenge_service.start("acme", challenge_service.FirstRequest(
        "alice", PASSWORD, code_challenge), now=utcnow())
    assert code_service.redeem("acme", issued.authorization_code, verifier, None,
                               now=utcnow()).session_id


def test_wrong_answers_per_user_are_capped_per_day(app, ctx):
    """Opening a new challenge every minute does not reset the guess budget: besides the
    per-window limit, a user's wrong second-factor answers are capped per day (30)."""
    make_tenant("acme")
    _user_with_totp()
    start = utcnow()
    wrong = 0
    for minute in range(60):
        now = start + timedelta(minutes=minute)
        try:
            auth_session, _ = _open_challenge(now)
        except TooManyAttempts:
            continue
        for _ in range(4):
            try:
                _answer(auth_session, now, otp="000000")
            except InvalidCredentials:
                wrong += 1
            except TooManyAttempts:
                break
            finally:
                db.session.remove()
    assert wrong == runtime().login_limits.mfa_per_day == 30
    assert "login.throttled" in event_types(app)


def test_an_undecryptable_totp_secret_is_503_and_counts_nothing(app, ctx, client):
    """A TOTP secret no configured key decrypts is the operator's problem: 503, no wrong
    answer counted against the user, the challenge still open."""
    make_tenant("acme")
    _, secret, _ = _user_with_totp()
    with transaction():
        db.session.execute(sa.text(
            "UPDATE factors SET secret_encrypted = decode(repeat('00', 60), 'hex')"))
    db.session.remove()
    signin = SignIn(client)
    started, _ = signin.start()
    auth_session = started.get_json()["auth_session"]
    answered = signin.challenge(auth_session=auth_session, otp=pyotp.TOTP(secret).now())
    assert answered.status_code == 503, answered.get_json()
    with transaction():
        row = db.session.execute(sa.text(
            "SELECT state, attempts FROM challenge_sessions")).one()
    assert tuple(row) == ("open", 0)


@pytest.mark.parametrize("body", [
    {"auth_session": "\ud800", "otp": "123456"},
    {"auth_session": "x" * 43, "recovery_code": "\ud800"},
    {"username": "alice", "password": "\ud800abcdefgh", "code_challenge": "c" * 43,
     "code_challenge_method": "S256"},
    {"username": "\ud800", "password": "abcdefgh", "code_challenge": "c" * 43,
     "code_challenge_method": "S256"},
    {"auth_session": "x" * 43, "recovery_code": "\u212a" * 16},
])
def test_strange_text_in_the_challenge_is_a_clear_400(client, tenant, user, body):
    """Lone surrogates (valid JSON escapes, not encodable) and look-alike letters that
    NFKC folds to ASCII: a JSON 400, never a 500."""
    response = client.post("/v1/tenants/acme/authorize-challenge", data=json.dumps(body),
                           content_type="application/json")
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] in {"invalid_request", "invalid_session"}


def test_a_discoverable_passkey_answer_waits_for_an_admin_removing_the_factors(
        app, ctx, client, monkeypatch):
    """A discoverable passkey's auth_session has no user until the passkey answers: the
    answer locks the row of the passkey's user first all the same, so it queues behind an
    admin's remove-all (no 40P01 from the factor row against the user row) and then finds
    the passkey gone: a wrong answer."""
    make_tenant("acme", webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))
    user = make_user("acme", "alice", PASSWORD)
    pk = Passkeys(client)
    device = SoftAuthenticator(ORIGIN)
    pk.enrol(pk.sign_in()["access_token"], device)
    started, _ = pk.passwordless()
    body = started.get_json()
    response = json.dumps(device.get(body["webauthn"]))
    results = interleave(
        app, monkeypatch, family, "revoke_all_for_user",
        lambda: factors.remove_all("acme", user.id, utcnow(), events.CLI),
        lambda: _answer(body["auth_session"], webauthn_response=response))
    assert results["first"] == 1, results
    assert isinstance(results["second"], InvalidCredentials), results
