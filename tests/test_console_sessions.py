"""Console sessions at service level (SPEC §14; app/services/signin/console_sessions.py):
the exchange of an admin key, expiry driven by `now`, the key's revocation, sign-out, the
throttle shared with logins, form tokens, purge; and the events type filter."""
from __future__ import annotations

import hashlib
import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ConsoleSession
from app.models import LoginAddressAttempts
from app.models import LoginAttempts
from app.services.accounts import users
from app.services.audit import events
from app.services.errors import AccessDenied
from app.services.errors import InvalidInput
from app.services.errors import LoginThrottled
from app.services.errors import ScopeMissing
from app.services.maintenance import purge
from app.services.signin import console_sessions
from app.services.tenancy import admin_keys
from tests import secret_registry
from tests.factories import make_admin_key
from tests.factories import make_tenant
from tests.factories import tenant_id
from tests.helpers import PASSWORD
from tests.helpers import settled
from tests.helpers import utcnow
from tests.plugins.database import make_app

ADDRESS = "203.0.113.7"


def sign_in(key: str, tenant: str = "acme", now=None, address: str = ADDRESS):
    token, session = console_sessions.sign_in(tenant, key, address, now or utcnow())
    secret_registry.remember(token)
    db.session.remove()
    return token, session


def stored() -> list[ConsoleSession]:
    rows = db.session.scalars(sa.select(ConsoleSession)).all()
    db.session.expunge_all()
    db.session.rollback()
    return list(rows)


def test_sign_in_stores_only_a_digest(ctx, admin_key):
    token, session = sign_in(admin_key)
    assert len(token) == 43 and session.tenant_slug == "acme"
    [row] = stored()
    assert bytes(row.digest) == hashlib.sha256(token.encode()).digest()
    assert row.admin_key_id == session.admin_key_id and row.tenant_id == tenant_id()
    assert row.expires_at - row.created_at == timedelta(hours=12)
    assert console_sessions.authenticate(token, utcnow()) == session
    assert console_sessions.authenticate(token + "x", utcnow()) is None


def test_idle_expiry_runs_from_the_last_request(ctx, admin_key):
    start = utcnow()
    token, _ = sign_in(admin_key, now=start)
    # Each request within 30 minutes of the previous one keeps the session.
    for minutes in (29, 58, 87):
        assert console_sessions.authenticate(token, start + timedelta(minutes=minutes))
    assert console_sessions.authenticate(token, start + timedelta(minutes=117, seconds=1)) is None


def test_absolute_expiry_after_12_hours_however_busy(ctx, admin_key):
    start = utcnow()
    token, _ = sign_in(admin_key, now=start)
    moment = start
    while moment < start + timedelta(hours=12) - timedelta(minutes=20):
        moment += timedelta(minutes=20)
        assert console_sessions.authenticate(token, moment), moment - start
    assert console_sessions.authenticate(token, start + timedelta(hours=12)) is None


def test_revoking_the_key_ends_its_sessions_at_once(ctx, admin_key):
    token, session = sign_in(admin_key)
    other_key = make_admin_key("acme", name="other")
    other, _ = sign_in(other_key)
    assert admin_keys.revoke_key("acme", session.admin_key_id, utcnow())
    db.session.remove()
    assert console_sessions.authenticate(token, utcnow()) is None
    assert console_sessions.authenticate(other, utcnow()) is not None


def test_sign_out_ends_the_session(ctx, admin_key):
    token, _ = sign_in(admin_key)
    assert console_sessions.sign_out(token)
    assert console_sessions.authenticate(token, utcnow()) is None
    assert not console_sessions.sign_out(token)
    assert stored() == []


@pytest.mark.parametrize("case", ["wrong key", "revoked key", "other tenant's key",
                                  "unknown tenant", "malformed tenant"])
def test_refused_keys_are_one_answer(ctx, admin_key, case):
    make_tenant("other")
    key = {"wrong key": "bat_" + "A" * 43, "revoked key": admin_key,
           "other tenant's key": make_admin_key("other"), "unknown tenant": admin_key,
           "malformed tenant": admin_key}[case]
    tenant = {"unknown tenant": "nobody", "malformed tenant": "Not A Slug!"}.get(case, "acme")
    if case == "revoked key":
        admin_keys.revoke_key("acme", 1, utcnow())
        db.session.remove()
    with pytest.raises(AccessDenied):
        sign_in(key, tenant)
    assert stored() == []


def test_an_introspect_key_opens_no_session(ctx, tenant):
    key = make_admin_key("acme", scope="introspect")
    with pytest.raises(ScopeMissing):
        sign_in(key)
    assert stored() == []


def counters() -> dict:
    rows = {(r.kind, r.key): r.attempts for r in db.session.scalars(sa.select(LoginAttempts))}
    rows.update({("addr", r.address): r.attempts
                 for r in db.session.scalars(sa.select(LoginAddressAttempts))})
    db.session.rollback()
    return rows


def test_failures_are_throttled_like_logins(ctx, admin_key):
    """Five failures from one network (BATON_LOGIN_MAX_PER_USER_ADDRESS): the sixth attempt
    is refused, even with the right key, and login.throttled names the console limit."""
    for _ in range(5):
        with pytest.raises(AccessDenied):
            sign_in("bat_wrong-key-wrong-key")
    assert counters() == {("console", ""): 5, ("console_addr", ADDRESS): 5,
                          ("addr", ADDRESS): 5}
    with pytest.raises(LoginThrottled) as throttled:
        sign_in(admin_key)
    assert 0 < throttled.value.retry_after <= 300
    assert stored() == []
    page = settled(tenant_id(), expect=1, kind=events.LOGIN_THROTTLED)
    assert [e["data"]["limit"] for e in page.events] == ["console_addr"]
    # Another network may still sign in; success forgets the tenant's console failures.
    sign_in(admin_key, address="198.51.100.1")
    assert counters() == {("console_addr", ADDRESS): 5, ("addr", ADDRESS): 5,
                          ("addr", "198.51.100.1"): 0}


def test_a_network_shares_one_allowance_for_keys_and_passwords(app, database_url):
    """The per-network counter across tenants is the login's: password failures count
    against console sign-ins and the reverse (here with an allowance of 3)."""
    small = make_app(database_url, LOGIN_MAX_PER_ADDRESS=3)
    with small.app_context():
        make_tenant("acme")
        users.create_user("acme", "alice", PASSWORD, utcnow())
        client = small.test_client()
        for _ in range(2):
            client.post("/v1/tenants/acme/token", data={
                "grant_type": "password", "username": "alice", "password": "wrong password"},
                environ_base={"REMOTE_ADDR": ADDRESS})
        with pytest.raises(AccessDenied):
            sign_in("bat_wrong-key-wrong-key", tenant="nobody")  # counted, no tenant
        with pytest.raises(LoginThrottled) as throttled:
            sign_in("bat_wrong-key-wrong-key", tenant="nobody")
        assert throttled.value.tenant_id is None  # no tenant, so no tenant's event
        db.session.remove()


def test_form_tokens_are_bound_to_their_session(ctx, admin_key):
    token, _ = sign_in(admin_key)
    other, _ = sign_in(admin_key)
    form = console_sessions.form_token(token)
    assert console_sessions.form_token_matches(token, form)
    assert not console_sessions.form_token_matches(other, form)
    # Another first character (the last one of 43 carries 4 bits only, and was sometimes "A"
    # already: the test failed about one run in sixteen).
    tampered = ("B" if form[0] != "B" else "C") + form[1:]
    assert not console_sessions.form_token_matches(token, tampered)
    assert not console_sessions.form_token_matches(token, "")
    assert not console_sessions.form_token_matches("", form)
    # The sign-in form's token is of another purpose: never a session's form token.
    sign_in_form = console_sessions.sign_in_form_token(token)
    assert not console_sessions.form_token_matches(token, sign_in_form)
    nonce = console_sessions.new_token()
    assert console_sessions.sign_in_form_token_matches(
        nonce, console_sessions.sign_in_form_token(nonce))


def test_form_tokens_survive_a_secret_change_with_fallbacks(app, database_url):
    with app.app_context():
        form = console_sessions.form_token("some session token")
    new_secret = "a-brand-new-secret-of-enough-length-0123456789"
    moved = make_app(database_url, SECRET_KEY=new_secret,
                     SECRET_KEY_FALLBACKS=[app.config["SECRET_KEY"]])
    without = make_app(database_url, SECRET_KEY=new_secret)
    with moved.app_context():
        assert console_sessions.form_token_matches("some session token", form)
        assert console_sessions.form_token("some session token") != form
    with without.app_context():
        assert not console_sessions.form_token_matches("some session token", form)


def test_purge_removes_ended_console_sessions(ctx, admin_key):
    now = utcnow()
    live, _ = sign_in(admin_key, now=now)
    sign_in(admin_key, now=now - timedelta(days=8))  # idle for a week
    sign_in(admin_key, now=now - timedelta(days=9))
    report = purge.purge(now, timedelta(days=7), 100, duty_cycle=1)
    assert report.sign_ins == 2
    [kept] = stored()
    assert bytes(kept.digest) == hashlib.sha256(live.encode()).digest()


# -- the events type filter (SPEC §14: the console pages through events by type) ----------

def test_list_events_by_type_pages_and_validates(ctx, tenant):
    tid = tenant_id()
    for i in range(3):
        users.create_user("acme", f"user{i}", PASSWORD, utcnow())
        users.disable_user("acme", f"user{i}", utcnow())
    first = settled(tid, limit=2, expect=2, kind=events.USER_DISABLED)
    assert [e["type"] for e in first.events] == ["user.disabled"] * 2
    rest = settled(tid, int(first.next_after), expect=1, kind=events.USER_DISABLED)
    assert [e["data"]["user_id"] for e in first.events + rest.events] == ["1", "2", "3"]
    assert events.list_events(tid, int(rest.next_after), kind="user.disabled").events == []
    assert len(settled(tid, expect=6).events) == 6  # no filter: both kinds
    with pytest.raises(InvalidInput, match="^type must be one of"):
        events.list_events(tid, kind="user.exploded")


def test_a_filtered_listing_never_skips_an_event_that_commits_later(app, ctx, tenant):
    """As without a filter: an event of the type held open in an earlier transaction is not
    passed by a reader's cursor while a later one commits."""
    tid = tenant_id()
    with db.engine.connect() as held:
        held_tx = held.begin()
        held.execute(events._INSERT, {"now": utcnow(), "rows": json.dumps([{
            "tenant_id": tid, "type": "user.disabled", "actor_type": "cli", "actor_id": None,
            "data": {"user_id": "held"}, "dedupe_key": None}])})
        users.create_user("acme", "late", PASSWORD, utcnow())
        users.disable_user("acme", "late", utcnow())  # commits with a larger id
        page = events.list_events(tid, kind="user.disabled")
        assert page.events == []
        held_tx.commit()
    page = settled(tid, expect=2, kind="user.disabled")
    assert [e["data"]["user_id"] for e in page.events] == ["held", "1"]


def test_parallel_guesses_cannot_slip_under_the_limit(app, database_url):
    """Eight sign-ins with wrong keys from one network at once, an allowance of 2: the
    counter is taken in the sign-in's own transaction, so exactly 2 are judged and 6 are
    throttled, however they interleave."""
    racing = make_app(database_url, DB_POOL_SIZE=10, LOGIN_MAX_PER_USER_ADDRESS=2)
    with racing.app_context():
        make_tenant("acme")
    barrier, outcomes = threading.Barrier(8), []

    def guess() -> None:
        with racing.app_context():
            barrier.wait(30)
            try:
                console_sessions.sign_in("acme", "bat_guess-guess-guess", ADDRESS, utcnow())
            except (AccessDenied, LoginThrottled) as refused:
                outcomes.append(type(refused).__name__)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=guess) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["AccessDenied"] * 2 + ["LoginThrottled"] * 6
