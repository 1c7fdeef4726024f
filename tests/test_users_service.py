"""The user services the CLI and the admin API share (SPEC §7, §9), called directly."""
from __future__ import annotations

import threading
import uuid

import pytest

from app.extensions import db
from app.services.accounts import users
from app.services.errors import GrantRejected
from app.services.errors import InvalidInput
from app.services.errors import Missing
from app.services.errors import Unavailable
from app.services.errors import UsernameTaken
from app.services.tenancy import tenants
from app.services.tokens import rotation
from app.services.tokens import sessions
from tests.helpers import chain_violations
from tests.helpers import login
from tests.helpers import rotate
from tests.helpers import utcnow


def test_by_name_and_by_id_are_the_same_user(ctx, user):
    by_name = users.get_user("acme", "ALICE")
    assert users.get_user("acme", by_name.id) == by_name
    assert users.find_user("acme", "Alice") == by_name
    assert users.find_user("acme", "bob") is None


def test_create_conflict_and_policy(ctx, user):
    with pytest.raises(UsernameTaken):
        users.create_user("acme", "Alice", "correct horse", utcnow())
    with pytest.raises(InvalidInput, match="^password"):
        users.create_user("acme", "bob", "short", utcnow())
    with pytest.raises(Missing):
        users.create_user("nope", "bob", "correct horse", utcnow())


def test_set_disabled_revokes_and_enable_does_not_resurrect(ctx, user):
    first = login()
    view, revoked = users.set_disabled("acme", 1, True, utcnow())
    assert revoked == 1 and view.disabled_at is not None
    view, revoked = users.set_disabled("acme", 1, False, utcnow())
    assert revoked == 0 and view.disabled_at is None
    with pytest.raises(GrantRejected):
        rotate(first.refresh_token)
    assert login().refresh_token


def test_logout_everywhere_and_sessions(ctx, user):
    for _ in range(3):
        login()
    assert len(users.user_sessions("acme", 1, utcnow())) == 3
    assert users.logout_everywhere("acme", "alice", utcnow()) == 3
    assert users.user_sessions("acme", 1, utcnow()) == []
    assert users.logout_everywhere("acme", 1, utcnow()) == 0


def test_admin_delete_session_is_scoped_to_the_tenant(ctx, user):
    tenants.create_tenant(tenants.TenantSettings("globex", "Globex"), utcnow())
    users.create_user("globex", "gina", "correct horse", utcnow())
    foreign = login("globex", "gina")
    with pytest.raises(Missing):
        sessions.admin_delete_session("acme", foreign.session_id, utcnow())
    with pytest.raises(Missing):
        sessions.admin_delete_session("acme", str(uuid.uuid4()), utcnow())
    sessions.admin_delete_session("globex", foreign.session_id, utcnow())
    sessions.admin_delete_session("globex", foreign.session_id, utcnow())  # idempotent


def test_list_users_pages_in_username_order(ctx, tenant):
    for name in ["delta", "Alpha", "charlie", "Bravo", "echo"]:
        users.create_user("acme", name, "correct horse", utcnow())
    page, cursor = users.list_users("acme", 2, None)
    assert [u.username for u in page] == ["alpha", "bravo"]
    page, cursor = users.list_users("acme", 2, cursor)
    assert [u.username for u in page] == ["charlie", "delta"]
    page, cursor = users.list_users("acme", 2, cursor)
    assert [u.username for u in page] == ["echo"] and cursor is None
    with pytest.raises(InvalidInput, match="^cursor"):
        users.list_users("acme", 2, "not base64!")


def test_disable_racing_refreshes_in_threads(app, user):
    """In-process: 8 threads rotate their own session's chain while the user is disabled."""
    with app.app_context():
        firsts = [login().refresh_token for _ in range(8)]
        db.session.remove()
    barrier = threading.Barrier(9)
    last: dict[int, str] = {}

    def refresher(index: int) -> None:
        token = firsts[index]
        with app.app_context():
            barrier.wait(30)
            for _ in range(30):
                try:
                    token = rotation.rotate("acme", token,
                                                 now=utcnow()).refresh_token
                except (GrantRejected, Unavailable):
                    break
            db.session.remove()
        last[index] = token

    def disabler() -> None:
        with app.app_context():
            barrier.wait(30)
            users.disable_user("acme", "alice", utcnow())
            db.session.remove()

    threads = [threading.Thread(target=refresher, args=(i,)) for i in range(8)]
    threads.append(threading.Thread(target=disabler))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    with app.app_context():
        users.enable_user("acme", "alice", utcnow())  # enabling must not bring any back
        for token in last.values():
            with pytest.raises(GrantRejected):
                rotate(token)
        assert chain_violations() == {"tokens_with_two_successors": 0,
                                      "sessions_with_two_current": 0}
        db.session.remove()
