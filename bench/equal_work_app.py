"""The equal-work yardstick: a minimal Flask + psycopg2 app doing exactly SPEC §5's work per
refresh, as Baton does it, and nothing else (issue 26's main target).

Never imported by `app/`. Per refresh, on Baton's own tables: the same SQL text Baton sends
(compiled from the app's own statements: the timeout prefix, the locking SELECT of the session
and the token, the rotation CTE), prepared on the server when Baton prepares
(EQUAL_PREPARED=1), with psycopg2's implicit BEGIN and an explicit COMMIT as Baton's session
has them; the same successor derivation (HMAC-SHA256 with the session's salt) and the same
checks of the locked rows; an EdDSA JWT with SPEC §6's and §13.4's claims; the token answer.
What it leaves out is Baton's architecture: no ORM session, no service layers, no tenant
cache, no request log line, no metrics, no strict body parsing, no error translation; one
connection per worker. `bench/minimal_app.py` (less than SPEC §5's work) stays as the floor.

Serve with `gunicorn -w 4 bench.equal_work_app:app` and EQUAL_DATABASE_URL, EQUAL_SECRET_KEY,
EQUAL_TENANT (slug), EQUAL_ISSUER and EQUAL_PREPARED set.
"""
from __future__ import annotations

import os
import uuid
from datetime import datetime
from datetime import timedelta
from datetime import timezone

import psycopg2
from flask import Flask
from flask import jsonify
from flask import request
from sqlalchemy.dialects import postgresql

from app.crypto import access_token_id
from app.crypto import decrypt_any
from app.crypto import derive_key
from app.crypto import load_ed25519_private
from app.crypto import new_refresh_token
from app.crypto import new_successor_salt
from app.crypto import successor_token
from app.crypto import token_digest
from app.database.timeouts import timeout_prefix
from app.runtime import KEY_ENCRYPTION_PURPOSE
from app.runtime import SUCCESSOR_PURPOSE
from app.services.tokens.access_tokens import AccessClaims
from app.services.tokens.access_tokens import sign_access_token
from app.services.tokens.family import LOCK_TOKEN
from app.services.tokens.rotation import ROTATE

DIALECT = postgresql.psycopg2.dialect()  # type: ignore[attr-defined]
PREFIX = timeout_prefix(2000, 10000, 60000)  # config's defaults, as engine_options builds it
PREPARED = os.environ.get("EQUAL_PREPARED", "1") == "1"
app = Flask(__name__)
_state: dict = {}


def setup() -> dict:
    """Once per worker: the connection, the tenant's row and its decrypted signing key."""
    if _state.get("conn") is not None and not _state["conn"].closed:
        return _state
    conn = psycopg2.connect(os.environ["EQUAL_DATABASE_URL"])
    secret = os.environ["EQUAL_SECRET_KEY"]
    with conn.cursor() as cur:
        cur.execute(
            "SELECT t.id, t.access_ttl, t.refresh_ttl, k.kid, k.private_key_encrypted"
            " FROM tenants t JOIN signing_keys k ON k.tenant_id = t.id AND k.retired_at IS NULL"
            " WHERE t.slug = %s", (os.environ.get("EQUAL_TENANT", "bench"),))
        tenant_id, access_ttl, refresh_ttl, kid, blob = cur.fetchone()
    conn.commit()
    raw, _ = decrypt_any([derive_key(secret, KEY_ENCRYPTION_PURPOSE)], bytes(blob),
                         b"baton-signing-key:" + kid.encode())
    _state.update(conn=conn, tenant_id=tenant_id, access_ttl=access_ttl,
                  refresh_ttl=refresh_ttl, kid=kid, signer=load_ed25519_private(raw),
                  successor_key=derive_key(secret, SUCCESSOR_PURPOSE), prepared=set(),
                  issuer=os.environ.get("EQUAL_ISSUER", "http://bench.local/v1/tenants/bench"))
    return _state


def run(cur, statement, params: dict) -> None:  # noqa: ANN001
    """Baton's statement as Baton sends it: EXECUTE (after PREPARE, the first time), or the
    text; the timeout prefix with the first statement of the transaction."""
    state = _state
    if PREPARED:
        prepare, execute, order = statement.prepared(DIALECT)
        values: object = [params[name] for name in order]
        if statement.name not in state["prepared"]:
            state["prepared"].add(statement.name)
            execute = f"{prepare}; {execute}"
        sql = execute
    else:
        sql, values = statement.sql(DIALECT), params
    if cur.connection.info.transaction_status == psycopg2.extensions.TRANSACTION_STATUS_IDLE:
        sql = PREFIX + sql
    cur.execute(sql, values)


@app.post("/login")
def login():
    """A session of user `u0` and its first token, straight into Baton's tables."""
    state = setup()
    conn, now = state["conn"], datetime.now(timezone.utc)
    token, session_id = new_refresh_token(), uuid.uuid4()
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM users WHERE tenant_id = %s AND username = 'u0'",
                    (state["tenant_id"],))
        user_id = cur.fetchone()[0]
        cur.execute(
            "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at, expires_at,"
            " successor_salt, auth_time, amr) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '{pwd}')",
            (str(session_id), state["tenant_id"], user_id, now, now, now + timedelta(days=30),
             new_successor_salt(), now))
        cur.execute(
            "INSERT INTO refresh_tokens (tenant_id, session_id, digest, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (state["tenant_id"], str(session_id), token_digest(token), now,
             now + timedelta(seconds=state["refresh_ttl"])))
        token_id = cur.fetchone()[0]
        cur.execute("UPDATE sessions SET current_token_id = %s WHERE id = %s",
                    (token_id, str(session_id)))
    conn.commit()
    return jsonify(refresh_token=token)


@app.post("/token")
def token():
    """SPEC §5's rotation of a current token, as Baton does it, and the token answer."""
    state = setup()
    conn, now = state["conn"], datetime.now(timezone.utc)
    presented = request.form["refresh_token"]
    with conn.cursor() as cur:
        run(cur, LOCK_TOKEN, {"tenant_id": state["tenant_id"], "digest": token_digest(presented)})
        row = cur.fetchone()
        # The checks of SPEC §5's table, on the locked rows (token_id, token_expires_at,
        # rotated_at, session_id, session_expires_at, revoked_at, user_id, salt, disabled_at,
        # current_token_id, auth_time, amr).
        if (row is None or row[5] is not None or row[4] <= now or row[8] is not None
                or row[0] != row[9] or row[1] <= now):
            conn.rollback()
            return jsonify(error="invalid_grant"), 400
        session_id = row[3]
        successor = successor_token(presented, state["successor_key"], bytes(row[7]),
                                    state["tenant_id"], session_id.bytes
                                    if isinstance(session_id, uuid.UUID)
                                    else uuid.UUID(session_id).bytes)
        digest = token_digest(successor)
        expires_at = min(now + timedelta(seconds=state["refresh_ttl"]), row[4])
        run(cur, ROTATE, {"now": now, "token_id": row[0], "successor_digest": digest,
                          "successor_expires_at": expires_at})
        if cur.rowcount != 1:
            conn.rollback()
            return jsonify(error="server_error"), 500
    conn.commit()
    issued_at = int(now.timestamp())
    claims = AccessClaims(
        issuer=state["issuer"], audience="baton", user_id=row[6], session_id=str(session_id),
        tenant_id=state["tenant_id"], issued_at=issued_at,
        expires_at=issued_at + state["access_ttl"], token_id=access_token_id(digest),
        auth_time=int(row[10].timestamp()), amr=tuple(row[11]))
    return jsonify(access_token=sign_access_token(claims, state["kid"], state["signer"]),
                   token_type="Bearer", expires_in=state["access_ttl"], refresh_token=successor,
                   refresh_expires_in=int((expires_at - now).total_seconds()),
                   session_id=str(session_id))


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
