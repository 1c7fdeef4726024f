"""Plain helpers for tests: an AuthActions-style token client and database checks."""
from __future__ import annotations

import time

import sqlalchemy as sa

from app.extensions import db


class TokenClient:
    """Logs in and refreshes through the Flask test client (flaskr's AuthActions)."""

    def __init__(self, client, tenant: str, username: str, password: str) -> None:
        self.client, self.tenant = client, tenant
        self.username, self.password = username, password

    @property
    def url(self) -> str:
        return f"/v1/tenants/{self.tenant}/token"

    def login(self, username: str | None = None, password: str | None = None, **kw):
        return self.client.post(self.url, data={
            "grant_type": "password",
            "username": self.username if username is None else username,
            "password": self.password if password is None else password,
        }, **kw)

    def refresh(self, refresh_token: str, tenant: str | None = None):
        url = f"/v1/tenants/{tenant or self.tenant}/token"
        return self.client.post(url, data={"grant_type": "refresh_token",
                                           "refresh_token": refresh_token})


def chain_violations() -> dict[str, int]:
    """What the database itself shows of forked chains; every count must be 0."""
    forks = db.session.execute(sa.text(
        "SELECT count(*) FROM (SELECT parent_id FROM refresh_tokens WHERE parent_id IS NOT NULL"
        " GROUP BY parent_id HAVING count(*) > 1) f")).scalar_one()
    two_current = db.session.execute(sa.text(
        "SELECT count(*) FROM (SELECT session_id FROM refresh_tokens WHERE rotated_at IS NULL"
        " GROUP BY session_id HAVING count(*) > 1) c")).scalar_one()
    db.session.rollback()
    return {"tokens_with_two_successors": forks, "sessions_with_two_current": two_current}


class AdminClient:
    """Calls /v1/tenants/<tenant>/admin/... with an admin key."""

    def __init__(self, client, tenant: str, key: str) -> None:
        self.client, self.tenant, self.key = client, tenant, key

    def __call__(self, method: str, path: str, key: str | None = None, **kw):
        headers = {"Authorization": f"Bearer {self.key if key is None else key}",
                   **kw.pop("headers", {})}
        return self.client.open(f"/v1/tenants/{self.tenant}/admin{path}", method=method,
                                headers=headers, **kw)

    def create_user(self, username: str, password: str = "correct horse"):
        return self("POST", "/users", json={"username": username, "password": password})


def settled(tenant_id: int, after: int | None = None, limit: int = 50, *, expect: int):
    """events.list_events once `expect` events are listable (or after 30 s).

    The listing holds back events younger than the oldest transaction running anywhere on
    the server, and a test server may be shared: wait (bounded) rather than assume it idle.
    """
    from app.services import events

    deadline = time.monotonic() + 30
    while True:
        page = events.list_events(tenant_id, after, limit)
        if len(page.events) >= expect or time.monotonic() > deadline:
            return page
        time.sleep(0.05)
