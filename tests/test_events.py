"""Security events (SPEC §10): each exists exactly when its change committed; listing is
commit-order safe; login.throttled is written once per throttle key and window."""
from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from functools import partial

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import AuthSession
from app.models import Event
from app.models import Tenant
from app.services.accounts import password_reset
from app.services.accounts import users
from app.services.audit import events
from app.services.errors import GrantRejected
from app.services.errors import InvalidInput
from app.services.errors import LoginThrottled
from app.services.signin import password_grant
from app.services.tenancy import signing_keys
from app.services.tokens import rotation
from app.services.tokens import sessions
from tests import helpers
from tests.helpers import rotate
from tests.helpers import settled
from tests.helpers import utcnow

PASSWORD = "correct horse"


class InjectedFault(Exception):
    pass


def _fail_before_commit(session, *args):
    raise InjectedFault("failure after the change, before commit")


@pytest.fixture
def fault_before_commit():
    """Lets a test make commits fail after every statement of the change has run."""
    yield
    if sa_event.contains(Session, "before_commit", _fail_before_commit):
        sa_event.remove(Session, "before_commit", _fail_before_commit)


def stored_events() -> list[Event]:
    rows = db.session.scalars(select(Event).order_by(Event.id)).all()
    db.session.expunge_all()  # detached with their values: reading them opens no transaction
    db.session.rollback()
    return rows


def kinds() -> Counter:
    return Counter(e.type for e in stored_events())


def tenant_id(slug: str = "acme") -> int:
    value = db.session.execute(select(Tenant.id).where(Tenant.slug == slug)).scalar_one()
    db.session.rollback()
    return value


login = partial(helpers.login, password=PASSWORD, client_address="192.0.2.7")


def live_sessions() -> int:
    n = db.session.execute(select(sa.func.count()).select_from(AuthSession)
                           .where(AuthSession.revoked_at.is_(None))).scalar_one()
    db.session.rollback()
    return n


# Each case: a setup (committed normally), then the change under test with what it must add.
def _replay(state):
    t0 = state["t0"]
    rotate(state["first"].refresh_token, now=t0)
    state["later"] = t0 + timedelta(hours=1)


def _do_replay(state):
    with pytest.raises(GrantRejected):
        rotation.rotate("acme", state["first"].refresh_token,
                             now=state["later"], client_address="198.51.100.9")


def _reset(state):
    state["reset"] = password_reset.issue_reset_token("acme", "alice")


CASES = {
    "session.started": (None, lambda s: login(),
                        {"session.started": 1}),
    "session.revoked logout (refresh token)": (
        None, lambda s: sessions.revoke("acme", s["first"].refresh_token, None, utcnow()),
        {"session.revoked": 1}),
    "session.revoked logout (access token)": (
        None, lambda s: sessions.revoke("acme", s["first"].access_token, "access_token",
                                        utcnow()),
        {"session.revoked": 1}),
    "session.revoked session_delete": (
        None, lambda s: sessions.delete_session("acme", s["first"].access_token,
                                                s["first"].session_id, utcnow()),
        {"session.revoked": 1}),
    "refresh_token.replayed": (_replay, _do_replay,
                               {"refresh_token.replayed": 1, "session.revoked": 1}),
    "user.created": (None, lambda s: users.create_user("acme", "bob", PASSWORD, utcnow()),
                     {"user.created": 1}),
    "user.disabled": (None, lambda s: users.disable_user("acme", "alice", utcnow()),
                      {"user.disabled": 1, "session.revoked": 1}),
    "user.password_changed": (
        None, lambda s: users.set_password("acme", "alice", "new horse staple", utcnow()),
        {"user.password_changed": 1, "session.revoked": 1}),
    "user.password_changed (reset)": (
        _reset, lambda s: password_reset.reset_password("acme", s["reset"], "new horse staple",
                                                        utcnow()),
        {"user.password_changed": 1, "session.revoked": 1}),
    "signing_key.rotated": (None, lambda s: signing_keys.rotate_key("acme", utcnow()),
                            {"signing_key.rotated": 1}),
}
REASONS = {"session.revoked logout (refresh token)": "logout",
           "session.revoked logout (access token)": "logout",
           "session.revoked session_delete": "session_delete",
           "refresh_token.replayed": "replay", "user.disabled": "user_disabled",
           "user.password_changed": "password_change",
           "user.password_changed (reset)": "password_change"}


@pytest.mark.parametrize("case", list(CASES))
def test_event_exists_iff_its_change_commits(ctx, user, case, fault_before_commit, request):
    setup, change, expected = CASES[case]
    t0 = utcnow()
    state = {"t0": t0, "first": login(now=t0)}
    if setup:
        setup(state)
    before, sessions_before = kinds(), live_sessions()

    sa_event.listen(Session, "before_commit", _fail_before_commit)
    with pytest.raises(InjectedFault):
        change(state)
    db.session.rollback()
    assert kinds() == before, "an event of a rolled-back change was stored"
    assert live_sessions() == sessions_before, "the change itself was rolled back too"

    sa_event.remove(Session, "before_commit", _fail_before_commit)
    change(state)
    assert kinds() - before == Counter(expected)
    new = [e for e in stored_events() if e.type in expected][-sum(expected.values()):]
    for stored in new:
        assert stored.tenant_id == tenant_id()
        assert stored.actor_type in ("user", "cli", "system")
        text = json.dumps(stored.data)
        # Ids, reasons and addresses only: no token, password or key.
        for secret in (state["first"].refresh_token, state["first"].access_token, PASSWORD,
                       "new horse staple", state.get("reset")):
            assert secret is None or secret not in text
    if case in REASONS:
        revoked = [e for e in new if e.type == "session.revoked"]
        assert [e.data["reason"] for e in revoked] == [REASONS[case]]
        reason = db.session.execute(select(AuthSession.revoke_reason)).scalar_one()
        db.session.rollback()
        assert reason == REASONS[case]  # the session row says the same


def test_event_fields_and_actors(ctx, user):
    first = login()
    users.disable_user("acme", "alice", utcnow())
    page = settled(tenant_id(), expect=3)
    by_type = {e["type"]: e for e in page.events}
    started = by_type["session.started"]
    assert started["tenant"] == "acme"
    assert started["actor"] == {"type": "user", "id": started["data"]["user_id"]}
    assert started["data"] == {"session_id": first.session_id,
                               "user_id": started["data"]["user_id"],
                               "client_address": "192.0.2.7", "amr": ["pwd"],
                               "client_id": None}
    assert by_type["user.disabled"]["actor"] == {"type": "cli", "id": None}
    assert by_type["session.revoked"]["data"]["reason"] == "user_disabled"
    assert all(isinstance(e["id"], str) for e in page.events)
    assert page.next_after == page.events[-1]["id"]


def test_ordinary_and_duplicate_refreshes_write_no_event(ctx, user):
    t0 = utcnow()
    first = login(now=t0)
    before = kinds()
    second = rotate(first.refresh_token, now=t0)
    rotate(first.refresh_token, now=t0 + timedelta(seconds=1))
    rotate(second.refresh_token, now=t0 + timedelta(seconds=2))
    assert kinds() == before


def test_replay_event_names_the_session_and_client(ctx, user):
    t0 = utcnow()
    first = login(now=t0)
    rotate(first.refresh_token, now=t0)
    with pytest.raises(GrantRejected):
        rotation.rotate("acme", first.refresh_token,
                             now=t0 + timedelta(minutes=5), client_address="198.51.100.9")
    replayed = [e for e in stored_events() if e.type == "refresh_token.replayed"]
    assert len(replayed) == 1
    assert replayed[0].actor_type == "system"
    assert replayed[0].data["session_id"] == first.session_id
    assert replayed[0].data["client_address"] == "198.51.100.9"


def test_login_throttled_once_per_key_and_window(app, ctx, user):
    window = app.config["LOGIN_WINDOW_S"]
    limit = app.config["LOGIN_MAX_PER_USER_ADDRESS"]  # one client, one username
    t0 = utcnow()
    statuses = []
    for i in range(limit + 4):
        try:
            password_grant.login("acme", "alice", "wrong password",
                                now=t0 + timedelta(seconds=i), client_address="192.0.2.7")
        except LoginThrottled:
            statuses.append(429)
        except GrantRejected:
            statuses.append(400)
    assert statuses == [400] * limit + [429] * 4
    throttled = [e for e in stored_events() if e.type == "login.throttled"]
    assert len(throttled) == 1
    assert throttled[0].data == {"limit": "user_addr", "user_id": throttled[0].data["user_id"],
                                 "client_address": "192.0.2.7"}
    assert throttled[0].data["user_id"] is not None

    # The next window throttles again: one more event, once.
    t1 = t0 + timedelta(seconds=window + 1)
    for i in range(limit + 2):
        with pytest.raises((LoginThrottled, GrantRejected)):
            password_grant.login("acme", "alice", "wrong password",
                                now=t1 + timedelta(seconds=i), client_address="192.0.2.7")
    assert kinds()["login.throttled"] == 2


def test_record_event_refuses_unknown_kinds_and_reasons(ctx, tenant):
    with pytest.raises(ValueError):
        events.record_event("session.exploded", tenant_id(), events.CLI, {}, utcnow())
    with pytest.raises(ValueError):
        events.session_revoked(tenant_id(), ["x"], "boredom", events.CLI, utcnow())


def test_list_events_pages_and_validates(ctx, tenant):
    tid = tenant_id()
    for i in range(5):
        users.create_user("acme", f"user{i}", PASSWORD, utcnow())
    first = settled(tid, limit=2, expect=2)
    assert [e["type"] for e in first.events] == ["user.created"] * 2
    second = settled(tid, int(first.next_after), limit=10, expect=3)
    assert len(second.events) == 3
    assert int(second.events[0]["id"]) > int(first.next_after)
    empty = events.list_events(tid, int(second.next_after))
    assert empty.events == [] and empty.next_after == second.next_after
    assert events.list_events(tid).as_json()["next_after"] == second.next_after
    for bad in (0, 201):
        with pytest.raises(InvalidInput, match="^limit"):
            events.list_events(tid, limit=bad)
    with pytest.raises(InvalidInput, match="^after"):
        events.list_events(tid, -1)
    other = db.session.execute(sa.insert(Tenant).values(
        slug="other", name="o", access_ttl=1, refresh_ttl=1, session_ttl=1, reuse_interval=0,
        created_at=utcnow()).returning(Tenant.id)).scalar_one()
    db.session.commit()
    assert events.list_events(other).events == []  # another tenant's events are not listed


def test_listing_never_skips_an_event_that_commits_later(app, ctx, tenant):
    """An earlier transaction holds a smaller event id open while a later one commits."""
    tid = tenant_id()
    users.create_user("acme", "early-bird", PASSWORD, utcnow())
    seen = settled(tid, expect=1)
    assert len(seen.events) == 1
    with db.engine.connect() as held:
        held_tx = held.begin()
        held.execute(events._INSERT, {"now": utcnow(), "rows": json.dumps([{
            "tenant_id": tid, "type": "user.created", "actor_type": "cli", "actor_id": None,
            "data": {"user_id": "held"}, "dedupe_key": None}])})
        held_id = held.execute(sa.text("SELECT max(id) FROM events")).scalar_one()
        users.create_user("acme", "late-bird", PASSWORD, utcnow())  # commits, larger id
        late_id = max(e.id for e in stored_events())
        assert held_id < late_id
        # A reader now must not move past the held event's id: the committed later event
        # is held back too, until nothing older is in flight.
        page = events.list_events(tid, int(seen.next_after))
        assert page.events == [] and page.next_after == seen.next_after
        held_tx.commit()
    page = settled(tid, int(seen.next_after), expect=2)
    assert [int(e["id"]) for e in page.events] == [held_id, late_id]


def test_listing_follows_transaction_order_not_id_order(app, ctx, tenant):
    """A transaction that started writing first may draw the larger event id and commit
    first; the event of the other, still open, must not be skipped once it commits."""
    tid = tenant_id()

    def insert(conn, user_id: str) -> int:
        conn.execute(events._INSERT, {"now": utcnow(), "rows": json.dumps([{
            "tenant_id": tid, "type": "user.created", "actor_type": "cli", "actor_id": None,
            "data": {"user_id": user_id}, "dedupe_key": None}])})
        return conn.execute(sa.text("SELECT max(id) FROM events")).scalar_one()

    with db.engine.connect() as first, db.engine.connect() as second:
        first_tx, second_tx = first.begin(), second.begin()
        first.execute(sa.text("SELECT pg_current_xact_id()"))  # first takes its xid first
        second.execute(sa.text("SELECT pg_current_xact_id()"))
        second_id = insert(second, "second")  # ... but second draws the smaller event id
        first_id = insert(first, "first")
        assert second_id < first_id
        first_tx.commit()  # the larger id commits first, while `second` is still open
        page = settled(tid, expect=1)
        assert [int(e["id"]) for e in page.events] == [first_id]  # older than `second`
        assert page.next_after == str(first_id)
        second_tx.commit()
    # Paging on from the larger id: the smaller one, committed later, is not skipped.
    rest = settled(tid, int(page.next_after), expect=1)
    assert [int(e["id"]) for e in rest.events] == [second_id]
    assert [int(e["id"]) for e in settled(tid, expect=2).events] == [first_id, second_id]
