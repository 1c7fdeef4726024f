"""Migrations apply from empty to head and back; each schema invariant is refused by PostgreSQL."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade
from flask_migrate import upgrade
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from tests.factories import make_tenant
from tests.helpers import utcnow

TABLES = {"tenants", "users", "sessions", "refresh_tokens", "signing_keys", "login_attempts",
          "admin_keys", "events", "webhooks", "login_address_attempts", "factors",
          "recovery_codes", "challenge_sessions", "authorization_codes", "console_sessions",
          "passkey_registrations"}


def table_names() -> set[str]:
    names = set(sa.inspect(db.engine).get_table_names())
    return names - {"alembic_version"}


def test_upgrade_downgrade_upgrade(ctx):
    assert table_names() == TABLES
    db.session.remove()
    downgrade(revision="base")
    assert table_names() == set()
    upgrade()
    assert table_names() == TABLES


def test_readyz_is_503_when_schema_is_behind(ctx, client):
    assert client.get("/readyz").status_code == 200
    db.session.remove()
    downgrade(revision="base")
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["error"] == "temporarily_unavailable"
        assert response.headers["Retry-After"]
    finally:
        upgrade()
    assert client.get("/readyz").status_code == 200


def refused(sql: str, params: dict | None = None) -> str:
    """Run a statement that must break a constraint; returns the constraint's name."""
    with pytest.raises(IntegrityError) as info:
        with db.session.begin():
            db.session.execute(sa.text(sql), params or {})
    db.session.rollback()
    return info.value.orig.diag.constraint_name


@pytest.fixture
def family(ctx, tenant, user):
    """A session with one current token, as raw rows."""
    now = utcnow()
    sid = uuid.uuid4()
    with db.session.begin():
        db.session.execute(sa.text(
            "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at, expires_at,"
            " auth_time) VALUES (:sid, 1, 1, :now, :now, :later, :now)"),
            {"sid": sid, "now": now, "later": now + timedelta(days=1)})
        token_id = db.session.execute(sa.text(
            "INSERT INTO refresh_tokens (tenant_id, session_id, digest, created_at, expires_at)"
            " VALUES (1, :sid, :d, :now, :later) RETURNING id"),
            {"sid": sid, "d": b"\x01" * 32, "now": now, "later": now + timedelta(days=1)}
        ).scalar_one()
        db.session.execute(sa.text("UPDATE sessions SET current_token_id = :t WHERE id = :sid"),
                           {"t": token_id, "sid": sid})
    return {"sid": sid, "now": now, "token_id": token_id}


INSERT_TOKEN = ("INSERT INTO refresh_tokens (tenant_id, session_id, parent_id, digest, created_at,"
                " expires_at, rotated_at) VALUES (1, :sid, :parent, :d, :now, :now, :rotated)")
# (every fixture row has tenant id 1 and user id 1: tables are truncated with RESTART IDENTITY)


def test_current_token_of_another_session_refused(family):
    """A session's one current token (a column: one value) must be one of its own tokens."""
    other = uuid.uuid4()
    with db.session.begin():
        db.session.execute(sa.text(
            "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at, expires_at,"
            " auth_time) VALUES (:sid, 1, 1, :now, :now, :now, :now)"),
            {"sid": other, "now": family["now"]})
    name = refused("UPDATE sessions SET current_token_id = :t WHERE id = :sid",
                   {"t": family["token_id"], "sid": other})
    assert name == "fk_sessions_current_token"


def test_unknown_current_token_refused(family):
    name = refused("UPDATE sessions SET current_token_id = :t WHERE id = :sid",
                   {"t": family["token_id"] + 1000, "sid": family["sid"]})
    assert name == "fk_sessions_current_token"


def test_current_token_deleted_without_its_session_refused(family):
    name = refused("DELETE FROM refresh_tokens WHERE id = :t", {"t": family["token_id"]})
    assert name == "fk_sessions_current_token"


def test_upgrade_gives_existing_sessions_their_current_token(ctx, tenant, user):
    """0006 is data-preserving: the token with rotated_at IS NULL becomes current_token_id."""
    db.session.remove()
    downgrade(revision="0005_events")
    now = utcnow()
    sid = uuid.uuid4()
    try:
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at,"
                " expires_at) VALUES (:sid, 1, 1, :now, :now, :now)"), {"sid": sid, "now": now})
            old = conn.execute(sa.text(
                "INSERT INTO refresh_tokens (tenant_id, session_id, digest, created_at,"
                " expires_at, rotated_at) VALUES (1, :sid, :d, :now, :now, :now) RETURNING id"),
                {"sid": sid, "d": b"\x01" * 32, "now": now}).scalar_one()
            current = conn.execute(sa.text(
                "INSERT INTO refresh_tokens (tenant_id, session_id, parent_id, digest, created_at,"
                " expires_at) VALUES (1, :sid, :p, :d, :now, :now) RETURNING id"),
                {"sid": sid, "p": old, "d": b"\x02" * 32, "now": now}).scalar_one()
    finally:
        upgrade()
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT current_token_id FROM sessions WHERE id = :sid"),
                            {"sid": sid}).scalar_one() == current
        # 0008: a session from before SPEC §13 signed in with its password when it started.
        signed_in = conn.execute(sa.text("SELECT auth_time, amr FROM sessions WHERE id = :sid"),
                                 {"sid": sid}).one()
        assert signed_in.auth_time == now and signed_in.amr == ["pwd"]
    # And back: the old partial index is rebuilt from the column.
    downgrade(revision="0005_events")
    try:
        with db.engine.connect() as conn:
            assert conn.execute(sa.text(
                "SELECT id FROM refresh_tokens WHERE session_id = :sid AND rotated_at IS NULL"),
                {"sid": sid}).scalars().all() == [current]
            assert conn.execute(sa.text(
                "SELECT count(*) FROM pg_indexes"
                " WHERE indexname = 'uq_refresh_tokens_current_per_session'")).scalar_one() == 1
    finally:
        upgrade()


def test_passkeys_upgrade_and_downgrade_keep_what_they_can(ctx, tenant, user):
    """0010: existing tenants get a random decoy key each; a downgrade removes passkeys, and
    the recovery codes of a user left without a second factor, and keeps the rest."""
    make_tenant("globex")
    now = utcnow()
    with db.engine.begin() as conn:
        bob = conn.execute(sa.text(
            "INSERT INTO users (tenant_id, username, password_hash, created_at) "
            "VALUES (1, 'bob', 'x', :now) RETURNING id"), {"now": now}).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO factors (tenant_id, user_id, type, name, created_at, confirmed_at,"
            " secret_encrypted) VALUES (1, 1, 'totp', 'phone', :now, :now, 'x')"), {"now": now})
        for owner in (1, bob):
            conn.execute(sa.text(
                "INSERT INTO factors (tenant_id, user_id, type, name, created_at, confirmed_at,"
                " credential_id, public_key, sign_count) VALUES (1, :u, 'passkey', 'key', :now,"
                " :now, :c, 'k', 3)"), {"u": owner, "now": now, "c": bytes([owner]) * 16})
            conn.execute(sa.text(
                "INSERT INTO recovery_codes (tenant_id, user_id, digest, created_at) "
                "VALUES (1, :u, :d, :now)"), {"u": owner, "d": bytes([owner]) * 32, "now": now})
        keys = conn.execute(sa.text("SELECT webauthn_decoy_key FROM tenants")).scalars().all()
    assert [len(k) for k in keys] == [32, 32] and keys[0] != keys[1]
    db.session.remove()
    downgrade(revision="0009_console")
    try:
        with db.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT user_id, type FROM factors")).all() == [
                (1, "totp")]
            assert conn.execute(sa.text(
                "SELECT user_id FROM recovery_codes")).scalars().all() == [1]
    finally:
        upgrade()


def test_two_successors_refused(family):
    first = {**family, "parent": family["token_id"], "d": b"\x02" * 32, "rotated": family["now"]}
    with db.session.begin():
        db.session.execute(sa.text(INSERT_TOKEN), first)
    name = refused(INSERT_TOKEN, {**family, "parent": family["token_id"], "d": b"\x03" * 32,
                                  "rotated": family["now"]})
    assert name == "uq_refresh_tokens_parent_id"


def test_duplicate_digest_in_tenant_refused(family):
    name = refused(INSERT_TOKEN, {**family, "parent": None, "d": b"\x01" * 32,
                                  "rotated": family["now"]})
    assert name == "uq_refresh_tokens_tenant_id_digest"


def test_token_of_another_tenant_than_its_session_refused(family):
    """Tenant scoping without a key to tenants: the (session, tenant) key refuses a token
    whose tenant is not its session's."""
    make_tenant("globex")  # tenant id 2
    name = refused(INSERT_TOKEN.replace("VALUES (1,", "VALUES (2,"),
                   {**family, "parent": None, "d": b"\x07" * 32, "rotated": None})
    assert name == "fk_refresh_tokens_session_id_sessions"


def test_a_deleted_tenant_takes_its_tokens_along(family):
    """ON DELETE CASCADE, tenant -> sessions -> tokens, through the (session, tenant) key."""
    with db.session.begin():
        db.session.execute(sa.text("DELETE FROM tenants WHERE id = 1"))
    with db.session.begin():
        assert db.session.execute(sa.text("SELECT count(*) FROM refresh_tokens")).scalar() == 0


def test_digest_must_be_sha256(family):
    name = refused(INSERT_TOKEN, {**family, "parent": None, "d": b"short", "rotated": None})
    assert name == "ck_refresh_tokens_digest_is_sha256"


def test_duplicate_username_refused(ctx, user):
    name = refused("INSERT INTO users (tenant_id, username, password_hash, created_at)"
                   " VALUES (1, 'alice', 'x', now())")
    assert name == "uq_users_tenant_id_username"


def test_second_current_signing_key_refused(ctx, tenant):
    name = refused("INSERT INTO signing_keys (tenant_id, kid, private_key_encrypted, public_jwk,"
                   " created_at) VALUES (1, 'other', 'x', '{}', now())")
    assert name == "uq_signing_keys_current_per_tenant"


@pytest.mark.parametrize("column, value, constraint", [
    ("reuse_interval", 301, "ck_tenants_reuse_interval_range"),
    ("reuse_interval", -1, "ck_tenants_reuse_interval_range"),
    ("access_ttl", 0, "ck_tenants_positive_lifetimes"),
])
def test_tenant_settings_checked(ctx, tenant, column, value, constraint):
    assert refused(f"UPDATE tenants SET {column} = :v", {"v": value}) == constraint


def test_bad_slug_refused(ctx):
    name = refused("INSERT INTO tenants (slug, name, access_ttl, refresh_ttl, session_ttl,"
                   " reuse_interval, created_at) VALUES ('Bad Slug', 'x', 1, 1, 1, 0, now())")
    assert name == "ck_tenants_slug_format"
