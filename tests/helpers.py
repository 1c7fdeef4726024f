"""Shared test helpers: logging in and refreshing (in-process, through the Flask test client,
or over HTTP against a live server), following a refresh chain, and database checks."""
from __future__ import annotations

import time
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from app.extensions import db
from app.services.signin import password_grant
from app.services.tokens import rotation
from app.services.tokens.issuing import IssuedTokens

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse"  # the password of the `user` fixture and of make_user


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- in-process, through the service layer (inside an app context) -------------------------

def login(tenant: str = "acme", username: str = "alice", password: str = PASSWORD, *,
          now: datetime | None = None, **kw: Any) -> IssuedTokens:
    """tokens.login with the defaults of the `user` fixture."""
    return password_grant.login(tenant, username, password, now=now or utcnow(), **kw)


def rotate(token: str, tenant: str = "acme", *, now: datetime | None = None) -> IssuedTokens:
    """tokens.rotate of one refresh token."""
    return rotation.rotate(tenant, token, now=now or utcnow())


# -- through the Flask test client ---------------------------------------------------------

class TokenClient:
    """Logs in and refreshes through the Flask test client (flaskr's AuthActions)."""

    def __init__(self, client: FlaskClient, tenant: str, username: str, password: str) -> None:
        self.client, self.tenant = client, tenant
        self.username, self.password = username, password

    @property
    def url(self) -> str:
        return f"/v1/tenants/{self.tenant}/token"

    def login(self, username: str | None = None, password: str | None = None,
              **kw: Any) -> TestResponse:
        return self.client.post(self.url, data={
            "grant_type": "password",
            "username": self.username if username is None else username,
            "password": self.password if password is None else password,
        }, **kw)

    def refresh(self, refresh_token: str, tenant: str | None = None) -> TestResponse:
        url = f"/v1/tenants/{tenant or self.tenant}/token"
        return self.client.post(url, data={"grant_type": "refresh_token",
                                           "refresh_token": refresh_token})


class AdminClient:
    """Calls /v1/tenants/<tenant>/admin/... with an admin key."""

    def __init__(self, client: FlaskClient, tenant: str, key: str) -> None:
        self.client, self.tenant, self.key = client, tenant, key

    def __call__(self, method: str, path: str, key: str | None = None,
                 **kw: Any) -> TestResponse:
        headers = {"Authorization": f"Bearer {self.key if key is None else key}",
                   **kw.pop("headers", {})}
        return self.client.open(f"/v1/tenants/{self.tenant}/admin{path}", method=method,
                                headers=headers, **kw)

    def create_user(self, username: str, password: str = PASSWORD) -> TestResponse:
        return self("POST", "/users", json={"username": username, "password": password})


# -- over HTTP, against a live server (also from forked client processes) ------------------

def http_login(base: str, tenant: str, username: str = "user0",
               password: str = "hunter2hunter2") -> dict:
    """The token response of a password grant that must succeed."""
    response = requests.post(f"{base}/v1/tenants/{tenant}/token", data={
        "grant_type": "password", "username": username, "password": password}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def http_refresh(base: str, tenant: str, token: str,
                 http: requests.Session | None = None) -> requests.Response:
    """One refresh-token grant."""
    return (http or requests).post(f"{base}/v1/tenants/{tenant}/token", data={
        "grant_type": "refresh_token", "refresh_token": token}, timeout=30)


def refresh_once(base: str, tenant: str, token: str) -> tuple[int, dict]:
    """One refresh: (status, JSON body)."""
    response = http_refresh(base, tenant, token)
    return response.status_code, response.json()


def refresh_chain(base: str, tenant: str, token: str, steps: int) -> list[int]:
    """Refresh `steps` times in a row, always with the newest token; returns the statuses."""
    statuses = []
    with requests.Session() as http:
        for _ in range(steps):
            response = http_refresh(base, tenant, token, http)
            statuses.append(response.status_code)
            if response.status_code != 200:
                break
            token = response.json()["refresh_token"]
    return statuses


# -- what the database shows ----------------------------------------------------------------

def chain_violations() -> dict[str, int]:
    """What the database itself shows of forked chains; every count must be 0."""
    forks = db.session.execute(sa.text(
        "SELECT count(*) FROM (SELECT parent_id FROM refresh_tokens WHERE parent_id IS NOT NULL"
        " GROUP BY parent_id HAVING count(*) > 1) f")).scalar_one()
    # The column holds one current token; a second one would be an unrotated token that the
    # session does not point at (a successor minted but not made current).
    two_current = db.session.execute(sa.text(
        "SELECT count(DISTINCT t.session_id) FROM refresh_tokens t"
        " JOIN sessions s ON s.id = t.session_id"
        " WHERE t.rotated_at IS NULL AND t.id IS DISTINCT FROM s.current_token_id")).scalar_one()
    db.session.rollback()
    return {"tokens_with_two_successors": forks, "sessions_with_two_current": two_current}


def settled(tenant_id: int, after: int | None = None, limit: int = 50, *, expect: int,
            kind: str | None = None) -> Any:
    """events.list_events once `expect` events are listable (or after 30 s).

    The listing holds back events younger than the oldest transaction running anywhere on
    the server, and a test server may be shared: wait (bounded) rather than assume it idle.
    """
    from app.services.audit import events

    deadline = time.monotonic() + 30
    while True:
        page = events.list_events(tenant_id, after, limit, kind=kind)
        if len(page.events) >= expect or time.monotonic() > deadline:
            return page
        time.sleep(0.05)


def event_types(app: Any) -> list[str]:
    """Every event's type, oldest first."""
    with app.app_context():
        kinds = db.session.execute(sa.text("SELECT type FROM events ORDER BY id")).scalars().all()
        db.session.remove()
    return list(kinds)


def events_of(app: Any, kind: str) -> list[dict]:
    """The events of one type, oldest first: their actor and data."""
    with app.app_context():
        rows = db.session.execute(sa.text(
            "SELECT actor_type, actor_id, data FROM events WHERE type = :t ORDER BY id"),
            {"t": kind}).all()
        db.session.remove()
    return [{"actor": (r.actor_type, r.actor_id), "data": r.data} for r in rows]
