"""SPEC §13.3 under real concurrency: gunicorn with 4 workers, parallel client processes
released together by a Barrier. One code redeemed N times yields one token response (and
the session dies); one auth_session answered N times yields at most one code; one TOTP code
presented N times is accepted once."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pyotp
import requests

from app.extensions import db
from app.services.accounts import factors
from app.services.audit import events
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction
from tests import factories
from tests.helpers import utcnow
from tests.parallel import run_together
from tests.signin_helpers import pkce

PASSWORD = "hunter2hunter2"
RACERS = 8


def make_user_with_totp(app, slug: str, username: str = "alice") -> str:
    """A tenant (if new) and a user with a confirmed TOTP factor; returns the secret."""
    with app.app_context():
        if not _exists(slug):
            factories.make_tenant(slug)
        user = factories.make_user(slug, username, PASSWORD)
        now = utcnow()
        with transaction():
            tenant = lookup_tenant(slug)
            enrolment = factors.start_totp(tenant, user.id, username, None, now)
            # Confirmed with the code of an earlier step: the current one stays usable.
            factors.finish_totp(tenant, user.id, enrolment.id,
                                pyotp.TOTP(enrolment.secret).at(now - timedelta(seconds=30)),
                                now, events.CLI)
        db.session.remove()
    return enrolment.secret


def _exists(slug: str) -> bool:
    from app.services.tenancy import tenants

    return tenants.tenant_exists(slug)


def post(url: str, fields: dict) -> tuple[int, dict]:
    response = requests.post(url, data=fields, timeout=30)
    return response.status_code, response.json()


def start(base: str, username: str = "alice") -> tuple[int, dict, str]:
    verifier, challenge = pkce()
    status, body = post(f"{base}/authorize-challenge", {
        "username": username, "password": PASSWORD, "code_challenge": challenge,
        "code_challenge_method": "S256"})
    return status, body, verifier


def tally(results: list[tuple[int, dict]]) -> Counter:
    return Counter(f"{status} {body.get('error', '')}".strip() for status, body in results)


def test_one_code_redeemed_in_parallel_gives_one_token_response(app, live_server):
    with app.app_context():
        factories.make_tenant("codes")
        factories.make_user("codes", "alice", PASSWORD)
    base = f"{live_server}/v1/tenants/codes"
    for _ in range(3):
        status, body, verifier = start(base)
        assert status == 200, body
        fields = {"grant_type": "authorization_code", "code": body["authorization_code"],
                  "code_verifier": verifier}
        results = run_together(post, [(f"{base}/token", fields)] * RACERS)
        counts = tally(results)
        assert counts == {"200": 1, "400 invalid_grant": RACERS - 1}, counts
        winner = next(body for status, body in results if status == 200)
        # The losers were replays: the session the winner started is revoked.
        status, _ = post(f"{base}/token", {"grant_type": "refresh_token",
                                           "refresh_token": winner["refresh_token"]})
        assert status == 400
    print(f"\n[code race] {RACERS} parallel redemptions x 3 rounds: {dict(counts)} each round;"
          " the winner's session revoked every round")


def test_one_auth_session_answered_in_parallel_gives_at_most_one_code(app, live_server):
    secret = make_user_with_totp(app, "answers")
    base = f"{live_server}/v1/tenants/answers"
    status, body, _ = start(base)
    assert status == 400 and body["error"] == "insufficient_authorization", body
    answer = {"auth_session": body["auth_session"], "otp": pyotp.TOTP(secret).now()}
    results = run_together(post, [(f"{base}/authorize-challenge", answer)] * RACERS)
    counts = tally(results)
    codes = [b["authorization_code"] for s, b in results if s == 200]
    assert len(codes) == 1, counts
    assert set(counts) <= {"200", "400 invalid_session", "400 invalid_grant"}, counts
    print(f"\n[auth_session race] {RACERS} parallel answers: {dict(counts)}")


def test_one_totp_code_in_parallel_auth_sessions_is_accepted_once(app, live_server):
    secret = make_user_with_totp(app, "otps")
    base = f"{live_server}/v1/tenants/otps"
    sessions = []
    for _ in range(RACERS):
        status, body, _ = start(base)
        assert status == 400, body
        sessions.append(body["auth_session"])
    code = pyotp.TOTP(secret).now()
    results = run_together(post, [(f"{base}/authorize-challenge",
                                   {"auth_session": s, "otp": code}) for s in sessions])
    counts = tally(results)
    assert counts == {"200": 1, "400 invalid_grant": RACERS - 1}, counts
    print(f"\n[totp race] one code in {RACERS} parallel auth_sessions: {dict(counts)}")
