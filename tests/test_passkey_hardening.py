"""Passkeys and the challenge flow against a determined attacker (from a security review):
a code minted before an admin acts does not outlive it; a factor change racing a revoke-all
is refused; a passwordless start's count goes back to the counter it was counted in; the
attested credential id must be the rawId; a stranger cannot raise `mfa.failed` for a named
user. Each test failed on the code before its fix."""
from __future__ import annotations

import json
import secrets

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services.accounts import factors
from app.services.accounts import passkeys as passkey_service
from app.services.audit import events
from app.services.tokens import family
from tests.factories import make_admin_key
from tests.factories import make_tenant
from tests.factories import make_user
from tests.helpers import PASSWORD
from tests.helpers import utcnow
from tests.parallel import interleave
from tests.passkey_helpers import ORIGIN
from tests.passkey_helpers import RP_ID
from tests.passkey_helpers import Passkeys
from tests.signin_helpers import pkce
from tests.soft_authenticator import SoftAuthenticator
from tests.soft_authenticator import b64u


@pytest.fixture
def admin_key(app, acme) -> str:
    with app.app_context():
        return make_admin_key("acme")


def _sql(app, query: str, **params):
    with app.app_context():
        rows = db.session.execute(sa.text(query), params).all()
        db.session.remove()
    return rows


# -- 1. A code minted before a remove-all / logout everywhere still starts a session --------

@pytest.mark.parametrize("action", ["remove_factors", "logout_everywhere"])
def test_a_code_minted_before_the_admin_acts_does_not_outlive_it(app, pk, device, alice,
                                                                 admin_key, action):
    """The "lost phone" case: whoever holds the passkey signs in passwordless and keeps the
    authorization code (60 s). The admin removes every factor (or logs the user out
    everywhere): the revoke-all bumps users.sign_in_epoch, which the code is bound to, so
    it no longer redeems (before the fix: a live session, enough to register the attacker's
    own passkey and undo the clean-up)."""
    start, verifier = pk.passwordless("alice")
    body = start.get_json()
    done = pk.answer(body["auth_session"], device.get(body["webauthn"]))
    code = done.get_json()["authorization_code"]
    headers = {"Authorization": f"Bearer {admin_key}"}
    if action == "remove_factors":
        acted = pk.client.delete("/v1/tenants/acme/admin/users/1/factors", headers=headers)
    else:
        acted = pk.client.delete("/v1/tenants/acme/admin/users/1/sessions", headers=headers)
    assert acted.status_code in (200, 204), (acted.status_code, acted.get_data(as_text=True))
    redeemed = pk.redeem(code, verifier)
    print("redeem after", action, "->", redeemed.status_code,
          sorted(redeemed.get_json()))  # (the names only: no token in the output)
    if redeemed.status_code == 200:
        token = redeemed.get_json()["access_token"]
        attacker = SoftAuthenticator(ORIGIN)
        options = pk.options(token)
        registered = (pk.register(token, attacker.create(options.get_json()))
                      if options.status_code == 200 else options)
        print("attacker's passkey registration with that session ->",
              registered.status_code, registered.get_json().get("type"))
    assert redeemed.status_code == 400, "a code from before the admin's action still signs in"


# -- 2. locked_caller checks the session before it waits for the user row -------------------

def test_a_registration_racing_an_admin_remove_all_is_refused(app, ctx, client, monkeypatch):
    """A registration waits for the user row while an admin's remove-all holds it (user row
    FOR UPDATE, sessions revoked, factors and pending registrations gone). locked_caller
    reads the session's liveness after the lock, so the registration is refused instead of
    adding the attacker's passkey after the clean-up."""
    make_tenant("acme", webauthn_rp_id=RP_ID, webauthn_origins=(ORIGIN,))
    user = make_user("acme", "alice", PASSWORD)
    pk = Passkeys(client)
    device = SoftAuthenticator(ORIGIN)
    pk.enrol(pk.sign_in()["access_token"], device)
    token = pk.sign_in_with(device, "alice")["access_token"]  # amr pop, mfa: a stolen token
    attacker = SoftAuthenticator(ORIGIN)
    options = pk.options(token).get_json()
    credential = json.dumps(attacker.create(options))
    db.session.remove()
    results = interleave(
        app, monkeypatch, family, "revoke_all_for_user",
        lambda: factors.remove_all("acme", user.id, utcnow(), events.CLI),
        lambda: passkey_service.register("acme", token, credential, "attacker", utcnow()))
    second = results["second"]
    print("remove_all ->", results["first"], "; register ->", type(second).__name__,
          getattr(second, "factor", second))
    left = db.session.execute(sa.text(
        "SELECT name FROM factors WHERE user_id = :u"), {"u": user.id}).scalars().all()
    db.session.remove()
    print("factors left after the admin's remove-all:", left)
    assert not isinstance(results["second"], passkey_service.Registered), results
    assert left == []


# -- 3. A passwordless sign-in gives its count back to whichever address answers --------------

def test_a_passwordless_completion_releases_the_starting_address_only(app, pk, device, alice):
    """The start is counted against the address that sent it, and the challenge remembers
    that counter and window: the completion gives the count back there, not to the address
    that sends the answer (else a guesser takes counts off its own address, the per-address
    allowance of password guesses across tenants, with an account of its own anywhere)."""
    guesser, helper = "203.0.113.7", "198.51.100.9"
    limit = app.extensions["baton"].login_limits.per_address
    for index in range(limit):  # spray: one wrong password per username
        response = pk.client.post("/v1/tenants/acme/token", environ_base={
            "REMOTE_ADDR": guesser}, data={"grant_type": "password",
                                           "username": f"user{index}", "password": "x" * 12})
        assert response.status_code == 400, response.get_json()
    blocked = pk.client.post("/v1/tenants/acme/token", environ_base={"REMOTE_ADDR": guesser},
                             data={"grant_type": "password", "username": "nobody",
                                   "password": "x" * 12})
    assert blocked.status_code == 429
    _, challenge = pkce()
    start = pk.client.post("/v1/tenants/acme/authorize-challenge",
                           environ_base={"REMOTE_ADDR": helper},
                           data={"passkey": "1", "username": "alice",
                                 "code_challenge": challenge, "code_challenge_method": "S256"})
    body = start.get_json()
    done = pk.client.post("/v1/tenants/acme/authorize-challenge",
                          environ_base={"REMOTE_ADDR": guesser},
                          data={"auth_session": body["auth_session"], "webauthn_response":
                                json.dumps(device.get(body["webauthn"]))})
    assert done.status_code == 200, done.get_json()
    counts = dict(_sql(app, "SELECT address, attempts FROM login_address_attempts"))
    print("address counters after the passwordless sign-in:", counts)
    again = pk.client.post("/v1/tenants/acme/token", environ_base={"REMOTE_ADDR": guesser},
                           data={"grant_type": "password", "username": "another",
                                 "password": "x" * 12})
    print("guesser's next password guess ->", again.status_code)
    assert again.status_code == 429, (again.status_code, counts)


# -- 5. The attested credential id is not the rawId: > 1023 bytes is a 500 -----------------

def test_an_attested_credential_id_longer_than_allowed_is_a_clear_400(pk, alice, device):
    """The factor stores the credential id of the attested credential data, which py_webauthn
    3.0.1 neither compares with rawId nor bounds (WebAuthn §7.1: ≤ 1023 bytes). It must be
    the rawId (bounded by the parser): a 2000-byte one is a 400, not a CHECK violation's
    500."""
    token = pk.sign_in_with(device, "alice")["access_token"]
    options = pk.options(token).get_json()
    credential = device.create(options, credential_id=secrets.token_bytes(2000))
    short = secrets.token_bytes(16)
    credential["id"] = credential["rawId"] = b64u(short)
    response = pk.register(token, credential)
    print("registration ->", response.status_code, response.get_json())
    assert response.status_code == 400, response.get_json()


def test_an_attested_credential_id_other_than_the_raw_id_is_refused(app, pk, alice, device):
    """Below the length limit: an attested credential id other than the rawId the client
    named (WebAuthn §7.1: the browser sets rawId from it) is refused."""
    token = pk.sign_in_with(device, "alice")["access_token"]
    options = pk.options(token).get_json()
    attested = secrets.token_bytes(32)
    credential = device.create(options, credential_id=attested)
    credential["id"] = credential["rawId"] = b64u(secrets.token_bytes(32))
    response = pk.register(token, credential)
    stored = [bytes(r[0]) for r in _sql(app, "SELECT credential_id FROM factors "
                                             "WHERE type = 'passkey'")]
    print("registration ->", response.status_code, "; attested id stored:", attested in stored)
    assert response.status_code == 400, response.get_json()



# -- 6. mfa.failed naming a user, raised by anyone who knows the username -------------------

def test_a_stranger_cannot_raise_mfa_failed_for_a_named_user(app, pk, alice):
    """After a password, `mfa.failed` tells the tenant that someone who had the user's
    password failed the second factor. A passwordless start needs no secret, so its 5th
    wrong answer records the event without a user: anyone who knows a username must not be
    able to make the tenant's alarm say that password is compromised."""
    stranger = SoftAuthenticator(ORIGIN)
    stranger.create({"rp": {"id": RP_ID}, "user": {"id": b64u(b"x" * 32)},
                     "challenge": b64u(b"c" * 32)})
    body = pk.passwordless("alice")[0].get_json()
    for _ in range(5):
        answered = pk.answer(body["auth_session"], stranger.get(
            body["webauthn"], credential_id=next(iter(stranger.credentials))))
        assert answered.get_json()["error"] == "invalid_grant"
    failed = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in _sql(
        app, "SELECT data FROM events WHERE type = 'mfa.failed'")]
    print("mfa.failed events:", failed)
    assert all(event.get("user_id") is None for event in failed), failed
