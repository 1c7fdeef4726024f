"""`GET …/admin/events` over HTTP (SPEC §10): the admin key's tenant only, the SPEC shape,
paging with `after`, strict parameters. The listing rule itself is tested in test_events."""
from __future__ import annotations

import time

import pytest

from app.extensions import db
from tests.factories import make_admin_key
from tests.helpers import TokenClient


def events_page(admin, query: str = "", expect: int = 0) -> dict:
    """The page once `expect` events are listable: the feed holds back events younger than
    any transaction still running on the (possibly shared) server; wait, bounded."""
    deadline = time.monotonic() + 30
    while True:
        response = admin("GET", f"/events{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        if len(body["events"]) >= expect or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_events_feed_pages_in_order_with_the_admin_key_as_actor(client, admin):
    created = admin.create_user("bob", "bob's long password").get_json()
    TokenClient(client, "acme", "bob", "bob's long password").login()
    first = events_page(admin, "?limit=2", expect=2)
    assert [e["type"] for e in first["events"]] == ["admin_key.created", "user.created"]
    assert first["next_after"] == first["events"][-1]["id"]
    made_by_key = first["events"][1]
    assert made_by_key["tenant"] == "acme"
    assert made_by_key["actor"]["type"] == "admin_key"
    assert made_by_key["data"] == {"user_id": created["id"]}
    rest = events_page(admin, f"?after={first['next_after']}", expect=1)
    assert [e["type"] for e in rest["events"]] == ["session.started"]
    empty = events_page(admin, f"?after={rest['next_after']}")
    assert empty == {"events": [], "next_after": rest["next_after"]}


def test_events_of_another_tenant_are_not_listed(app, client, admin, user):
    from app.services.tenancy import tenants
    from tests.helpers import utcnow

    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings("globex", "Globex"), utcnow())
        other_key = make_admin_key("globex")
        db.session.remove()
    TokenClient(client, "acme", *user).login()
    assert events_page(admin, expect=2)["events"]
    other = client.get("/v1/tenants/globex/admin/events",
                       headers={"Authorization": f"Bearer {other_key}"}).get_json()
    assert [e["type"] for e in other["events"]] in ([], ["admin_key.created"])
    # acme's key is no key at all for globex
    foreign = client.get("/v1/tenants/globex/admin/events",
                         headers={"Authorization": f"Bearer {admin.key}"})
    assert foreign.status_code == 401


@pytest.mark.parametrize("query, field", [
    ("?limit=0", "limit"), ("?limit=201", "limit"), ("?limit=x", "limit"),
    ("?after=-1", "after"), ("?after=abc", "after"), ("?since=1", "since"),
])
def test_bad_parameters_are_400_naming_the_field(admin, query, field):
    response = admin("GET", f"/events{query}")
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "invalid_request"
    assert body["error_description"].startswith(field)


def test_an_introspect_key_may_not_read_events(app, client, tenant):
    with app.app_context():
        key = make_admin_key(tenant, scope="introspect")
    response = client.get("/v1/tenants/acme/admin/events",
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403
    assert response.get_json()["error"] == "insufficient_scope"
