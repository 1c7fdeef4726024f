"""The yardstick: a deliberately minimal Flask + psycopg2 app doing only the rotation transaction.

Never imported by `app/`. It has no sessions, no reuse interval, no JWT, no logging: lock
the token by digest, mark it rotated, insert a random successor, commit. Serve with
`gunicorn -w 4 bench.minimal_app:app` and MINI_DATABASE_URL set.
"""
from __future__ import annotations

import hashlib
import os
import secrets

import psycopg2
from flask import Flask
from flask import jsonify
from flask import request

SCHEMA = """
CREATE TABLE IF NOT EXISTS mini_tokens (
    id bigserial PRIMARY KEY,
    digest bytea NOT NULL UNIQUE,
    parent_id bigint UNIQUE,
    created_at timestamptz NOT NULL,
    rotated_at timestamptz
)
"""

app = Flask(__name__)
_conn = None


def connection():
    global _conn
    if _conn is None or _conn.closed:
        _conn = psycopg2.connect(os.environ["MINI_DATABASE_URL"])
    return _conn


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@app.post("/login")
def login():
    token = secrets.token_urlsafe(32)
    conn = connection()
    with conn.cursor() as cur:
        cur.execute("INSERT INTO mini_tokens (digest, created_at) VALUES (%s, now())",
                    (digest(token),))
    conn.commit()
    return jsonify(refresh_token=token)


@app.post("/token")
def token():
    presented = request.form["refresh_token"]
    conn = connection()
    with conn.cursor() as cur:
        cur.execute("SELECT id, rotated_at FROM mini_tokens WHERE digest = %s FOR UPDATE",
                    (digest(presented),))
        row = cur.fetchone()
        if row is None or row[1] is not None:
            conn.rollback()
            return jsonify(error="invalid_grant"), 400
        successor = secrets.token_urlsafe(32)
        cur.execute("UPDATE mini_tokens SET rotated_at = now() WHERE id = %s", (row[0],))
        cur.execute("INSERT INTO mini_tokens (digest, parent_id, created_at)"
                    " VALUES (%s, %s, now())", (digest(successor), row[0]))
    conn.commit()
    return jsonify(refresh_token=successor)
