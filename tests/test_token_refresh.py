"""Rotation (SPEC §5): every row of the state table in docs/design.md, at service level."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.services.accounts import users
from app.services.errors import GrantRejected
from app.services.errors import Missing
from app.services.tenancy import lookup as tenant_lookup
from app.services.tenancy import tenants
from tests.helpers import chain_violations
from tests.helpers import login
from tests.helpers import rotate
from tests.helpers import utcnow


def session_revoked(session_id) -> bool:
    revoked = db.session.execute(sa.text("SELECT revoked_at FROM sessions WHERE id = :id"),
                                 {"id": session_id}).scalar_one()
    db.session.rollback()
    return revoked is not None


def set_reuse_interval(seconds: int) -> None:
    with db.session.begin():
        db.session.execute(sa.text("UPDATE tenants SET reuse_interval = :s"), {"s": seconds})
    tenant_lookup.forget()


@pytest.fixture
def t0():
    return utcnow()


def test_current_token_rotates(ctx, user, t0):
    first = login(now=t0)
    second = rotate(first.refresh_token, now=t0 + timedelta(seconds=60))
    assert second.refresh_token != first.refresh_token
    assert second.session_id == first.session_id
    assert second.access_token != first.access_token
    third = rotate(second.refresh_token, now=t0 + timedelta(seconds=120))
    assert third.refresh_token not in (first.refresh_token, second.refresh_token)
    assert chain_violations() == {"tokens_with_two_successors": 0,
                                  "sessions_with_two_current": 0}


def test_duplicate_within_interval_gets_identical_pair(ctx, user, t0):
    first = login(now=t0)
    rotated = rotate(first.refresh_token, now=t0 + timedelta(seconds=1))
    again = rotate(first.refresh_token, now=t0 + timedelta(seconds=5))
    assert again.refresh_token == rotated.refresh_token
    assert again.access_token == rotated.access_token
    assert again.expires_in == rotated.expires_in - 4  # only expires_in counts down
    # The successor still rotates normally afterwards.
    successor = rotate(rotated.refresh_token, now=t0 + timedelta(seconds=6))
    assert successor.session_id == first.session_id


def test_duplicate_after_interval_is_replay(ctx, user, t0):
    first = login(now=t0)
    rotate(first.refresh_token, now=t0 + timedelta(seconds=1))
    with pytest.raises(GrantRejected):
        rotate(first.refresh_token, now=t0 + timedelta(seconds=11))  # interval is 10 s
    assert session_revoked(first.session_id)


def test_interval_measured_from_rotation_not_issue(ctx, user, t0):
    first = login(now=t0)
    rotated = rotate(first.refresh_token, now=t0 + timedelta(seconds=100))
    assert rotate(first.refresh_token, now=t0 + timedelta(seconds=109)).refresh_token == \
        rotated.refresh_token


def test_older_ancestor_is_replay_and_kills_successors(ctx, user, t0):
    first = login(now=t0)
    second = rotate(first.refresh_token, now=t0 + timedelta(seconds=1))
    third = rotate(second.refresh_token, now=t0 + timedelta(seconds=2))
    with pytest.raises(GrantRejected):
        rotate(first.refresh_token, now=t0 + timedelta(seconds=3))  # successor already used
    assert session_revoked(first.session_id)
    with pytest.raises(GrantRejected):
        rotate(third.refresh_token, now=t0 + timedelta(seconds=4))


def test_strict_mode_any_second_use_is_replay(ctx, user, t0):
    set_reuse_interval(0)
    first = login(now=t0)
    second = rotate(first.refresh_token, now=t0 + timedelta(seconds=1))
    with pytest.raises(GrantRejected):
        rotate(first.refresh_token, now=t0 + timedelta(seconds=1))
    with pytest.raises(GrantRejected):
        rotate(second.refresh_token, now=t0 + timedelta(seconds=2))


def test_revoked_session_never_grants_reuse(ctx, user, t0):
    first = login(now=t0)
    second = rotate(first.refresh_token, now=t0 + timedelta(seconds=1))
    with db.session.begin():
        db.session.execute(sa.text("UPDATE sessions SET revoked_at = :t"), {"t": t0})
    for token in (first.refresh_token, second.refresh_token):
        with pytest.raises(GrantRejected):
            rotate(token, now=t0 + timedelta(seconds=2))


def test_expired_token_is_rejected_without_revoking(ctx, app, database_url, t0):
    tenants.create_tenant(tenants.TenantSettings("acme", "Acme", refresh_ttl=60), t0)
    users.create_user("acme", "alice", "correct horse", t0)
    first = login(now=t0)
    with pytest.raises(GrantRejected):
        rotate(first.refresh_token, now=t0 + timedelta(seconds=61))
    assert not session_revoked(first.session_id)


def test_session_absolute_lifetime_is_never_extended(ctx, t0):
    tenants.create_tenant(
        tenants.TenantSettings("acme", "Acme", refresh_ttl=100, session_ttl=150), t0)
    users.create_user("acme", "alice", "correct horse", t0)
    first = login(now=t0)
    second = rotate(first.refresh_token, now=t0 + timedelta(seconds=90))
    # Idle TTL would allow 190 s; the session's absolute lifetime caps it at 150 s.
    assert second.refresh_expires_in == 60
    with pytest.raises(GrantRejected):
        rotate(second.refresh_token, now=t0 + timedelta(seconds=151))


def test_disabled_user_cannot_refresh(ctx, user, t0):
    first = login(now=t0)
    with db.session.begin():
        db.session.execute(sa.text("UPDATE users SET disabled_at = :t"), {"t": t0})
    with pytest.raises(GrantRejected):
        rotate(first.refresh_token, now=t0 + timedelta(seconds=1))


def test_unknown_token_is_invalid_grant(ctx, user, t0):
    with pytest.raises(GrantRejected):
        rotate("x" * 43, now=t0)


def test_unknown_tenant_is_not_found(ctx, user, t0):
    first = login(now=t0)
    with pytest.raises(Missing):
        rotate(first.refresh_token, now=t0, tenant="nope")


def test_other_tenants_token_is_unknown_and_harmless(ctx, user, t0):
    tenants.create_tenant(tenants.TenantSettings("globex", "Globex"), t0)
    first = login(now=t0)
    with pytest.raises(GrantRejected):
        rotate(first.refresh_token, now=t0 + timedelta(seconds=1), tenant="globex")
    assert not session_revoked(first.session_id)
    assert rotate(first.refresh_token, now=t0 + timedelta(seconds=2)).session_id == first.session_id


def test_replay_revocation_is_committed(app, user, t0):
    """The revocation survives the error: it is committed before invalid_grant is raised."""
    with app.app_context():
        first = login(now=t0)
        rotate(first.refresh_token, now=t0 + timedelta(seconds=1))
        with pytest.raises(GrantRejected):
            rotate(first.refresh_token, now=t0 + timedelta(seconds=30))
        db.session.remove()
    with app.app_context():  # a new session: only committed data is visible
        assert session_revoked(first.session_id)
        db.session.remove()


def test_invalid_grant_bodies_are_identical(client, tokens, app, t0):
    """No oracle: every cause gives byte-identical bodies over HTTP."""
    bodies = set()
    bodies.add(tokens.login(password="wrong").get_data())
    bodies.add(tokens.login(username="nobody").get_data())
    live = tokens.login().get_json()["refresh_token"]
    bodies.add(tokens.refresh("y" * 43).get_data())
    rotated = tokens.refresh(live)
    assert rotated.status_code == 200
    with app.app_context():
        with db.session.begin():
            db.session.execute(sa.text("UPDATE refresh_tokens SET rotated_at = rotated_at - "
                                       "interval '1 hour' WHERE rotated_at IS NOT NULL"))
        db.session.remove()
    bodies.add(tokens.refresh(live).get_data())  # replay
    bodies.add(tokens.refresh(rotated.get_json()["refresh_token"]).get_data())  # revoked
    assert len(bodies) == 1


def test_refresh_over_http(tokens):
    first = tokens.login().get_json()
    response = tokens.refresh(first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    second = response.get_json()
    assert second["session_id"] == first["session_id"]
    assert tokens.refresh(second["refresh_token"]).status_code == 200


def _successor_salt(session_id):
    salt = db.session.execute(sa.text("SELECT successor_salt FROM sessions WHERE id = :id"),
                              {"id": session_id}).scalar_one()
    db.session.rollback()
    return salt


def test_successor_needs_the_sessions_salt_not_only_the_server_key(ctx, user, t0):
    from app.crypto import successor_token
    from app.runtime import runtime

    first, other = login(now=t0), login(now=t0)
    salts = {bytes(_successor_salt(first.session_id)), bytes(_successor_salt(other.session_id))}
    assert len(salts) == 2 and all(len(s) == 16 for s in salts)  # random, per session
    second = rotate(first.refresh_token, now=t0 + timedelta(seconds=60))
    # The server key and the presented token alone (the old derivation) do not give it.
    assert second.refresh_token != successor_token(first.refresh_token, runtime().successor_key)


def test_legacy_session_without_salt_still_rotates_and_deduplicates(ctx, user, t0):
    first = login(now=t0)
    # A session started before the salt column existed.
    with db.session.begin():
        db.session.execute(sa.text("UPDATE sessions SET successor_salt = NULL WHERE id = :id"),
                           {"id": first.session_id})
    from app.crypto import successor_token
    from app.runtime import runtime

    second = rotate(first.refresh_token, now=t0 + timedelta(seconds=60))
    assert second.refresh_token == successor_token(first.refresh_token, runtime().successor_key)
    duplicate = rotate(first.refresh_token, now=t0 + timedelta(seconds=62))
    assert (duplicate.refresh_token, duplicate.access_token) == (second.refresh_token,
                                                                 second.access_token)
    third = rotate(second.refresh_token, now=t0 + timedelta(seconds=120))
    assert third.session_id == first.session_id and not session_revoked(first.session_id)
