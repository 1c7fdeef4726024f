"""Prometheus metrics (SPEC §12): exact counts summed over 4 gunicorn workers, the event
gauges, lock timeouts, and BATON_METRICS=0."""
from __future__ import annotations

import threading
import uuid

import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.services.accounts import users
from app.services.tenancy import tenants
from app.services.tenancy import webhook_endpoints
from tests.helpers import utcnow
from tests.plugins.database import make_app

SPEC_NAMES = ("baton_refresh_total", "baton_login_total",
              "baton_http_request_duration_seconds_bucket", "baton_lock_timeouts_total",
              "baton_db_unavailable_total", "baton_events_pending",
              "baton_events_oldest_pending_seconds")


def parse(text: str) -> dict[tuple, float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_endpoint_in_process(client, tenant):
    client.get("/healthz")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = parse(response.get_data(as_text=True))
    names = {name for name, _ in samples}
    for name in SPEC_NAMES:
        assert name in names, name
    for outcome in ("rotated", "duplicate", "replay", "invalid", "expired", "revoked"):
        assert ("baton_refresh_total", (("outcome", outcome),)) in samples
    # Route names, never raw paths (no tenant slug in a label).
    client.get("/v1/tenants/acme/jwks.json")
    client.get("/v1/tenants/no-such-path/whatever")
    samples = parse(client.get("/metrics").get_data(as_text=True))
    endpoints = {dict(labels).get("endpoint") for name, labels in samples
                 if name.startswith("baton_http_request_duration_seconds")}
    assert {"oauth.jwks", "unmatched", "metrics.metrics"} <= endpoints
    assert not any("acme" in str(labels) for _, labels in samples)


def test_metrics_off_is_404_and_counts_nothing(database_url, app):
    off = make_app(database_url, METRICS_ENABLED=False)
    client = off.test_client()
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.get_json()["error"] == "not_found"
    before = parse(app.test_client().get("/metrics").get_data(as_text=True))
    client.get("/healthz")
    client.post("/v1/tenants/acme/token", data={"grant_type": "refresh_token",
                                                "refresh_token": "x" * 43})
    after = parse(app.test_client().get("/metrics").get_data(as_text=True))
    assert value(after, "baton_refresh_total", outcome="invalid") == value(
        before, "baton_refresh_total", outcome="invalid")
    assert value(after, "baton_http_request_duration_seconds_count", endpoint="health.healthz",
                 method="GET", status="200") == value(
        before, "baton_http_request_duration_seconds_count", endpoint="health.healthz",
        method="GET", status="200")


def test_failed_and_throttled_logins_are_counted(app, client, user):
    before = parse(client.get("/metrics").get_data(as_text=True))
    limit = app.config["LOGIN_MAX_PER_USER_ADDRESS"]  # one client, one username
    statuses = [client.post("/v1/tenants/acme/token", data={
        "grant_type": "password", "username": "alice", "password": "wrong password"}).status_code
        for _ in range(limit + 2)]
    assert statuses == [400] * limit + [429] * 2
    after = parse(client.get("/metrics").get_data(as_text=True))
    for outcome, delta in (("invalid", limit), ("throttled", 2), ("success", 0)):
        assert value(after, "baton_login_total", outcome=outcome) == value(
            before, "baton_login_total", outcome=outcome) + delta


def test_lock_timeout_is_counted(database_url, app, tokens):
    impatient = make_app(database_url, LOCK_TIMEOUT_MS=200)
    client = impatient.test_client()
    first = tokens.login().get_json()
    before = parse(client.get("/metrics").get_data(as_text=True))
    with app.app_context():
        with db.engine.connect() as conn:
            tx = conn.begin()
            conn.execute(sa.text("SELECT 1 FROM sessions FOR UPDATE"))
            response = client.post("/v1/tenants/acme/token", data={
                "grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
            tx.rollback()
    assert response.status_code == 503
    after = parse(client.get("/metrics").get_data(as_text=True))
    assert value(after, "baton_lock_timeouts_total") == value(
        before, "baton_lock_timeouts_total") + 1
    assert value(after, "baton_db_unavailable_total") == value(
        before, "baton_db_unavailable_total")
    assert value(after, "baton_http_request_duration_seconds_count", endpoint="oauth.token",
                 method="POST", status="503") == value(
        before, "baton_http_request_duration_seconds_count", endpoint="oauth.token",
        method="POST", status="503") + 1


def _post(base, slug, **data):
    return requests.post(f"{base}/v1/tenants/{slug}/token", data=data, timeout=30)


def _refresh(base, slug, token):
    return _post(base, slug, grant_type="refresh_token", refresh_token=token)


def test_counts_are_exact_across_four_gunicorn_workers(app, live_server):
    slug = f"metrics-{uuid.uuid4().hex[:8]}"
    with app.app_context():
        tenants.create_tenant(tenants.TenantSettings(slug, slug, reuse_interval=60), utcnow())
        users.create_user(slug, "user0", "pw-metrics", utcnow())
        # events stay owed
        webhook_endpoints.set_webhook(slug, "http://127.0.0.1:9/nowhere", utcnow())
        db.session.remove()
    before = parse(requests.get(f"{live_server}/metrics", timeout=10).text)

    def login(password="pw-metrics"):
        return _post(live_server, slug, grant_type="password", username="user0",
                     password=password)

    a, b, c = (login().json()["refresh_token"] for _ in range(3))     # login success 3
    assert [login("wrong").status_code for _ in range(2)] == [400, 400]  # login invalid 2
    for _ in range(5):                                                  # rotated 5
        response = _refresh(live_server, slug, a)
        assert response.status_code == 200
        a = response.json()["refresh_token"]
    b1 = _refresh(live_server, slug, b).json()["refresh_token"]        # rotated 1
    assert [_refresh(live_server, slug, b).json()["refresh_token"] for _ in range(2)] == [b1, b1]
    c1 = _refresh(live_server, slug, c).json()["refresh_token"]        # rotated 1
    c2 = _refresh(live_server, slug, c1).json()["refresh_token"]       # rotated 1
    assert _refresh(live_server, slug, c).status_code == 400            # replay 1
    assert _refresh(live_server, slug, c2).status_code == 400           # revoked 1
    assert _refresh(live_server, slug, "x" * 43).status_code == 400     # invalid 1

    # Each scrape is answered by whichever worker accepts it; every one sums all four.
    scrapes = []
    threads = [threading.Thread(target=lambda: scrapes.append(parse(requests.get(
        f"{live_server}/metrics", timeout=10).text))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = {
        ("baton_refresh_total", "rotated"): 8, ("baton_refresh_total", "duplicate"): 2,
        ("baton_refresh_total", "replay"): 1, ("baton_refresh_total", "revoked"): 1,
        ("baton_refresh_total", "invalid"): 1, ("baton_refresh_total", "expired"): 0,
        ("baton_login_total", "success"): 3, ("baton_login_total", "invalid"): 2,
        ("baton_login_total", "throttled"): 0,
    }
    with app.app_context():
        pending = db.session.execute(sa.text(
            "SELECT count(*) FROM events WHERE delivery = 'pending'")).scalar_one()
        db.session.remove()
    assert pending == 5  # 3 session.started, refresh_token.replayed, session.revoked
    for after in scrapes:
        for (name, outcome), delta in expected.items():
            got = value(after, name, outcome=outcome) - value(before, name, outcome=outcome)
            assert got == delta, (name, outcome, got, delta)
        token_200 = ("baton_http_request_duration_seconds_count",
                     {"endpoint": "oauth.token", "method": "POST", "status": "200"})
        token_400 = (token_200[0], {**token_200[1], "status": "400"})
        assert value(after, token_200[0], **token_200[1]) - value(
            before, token_200[0], **token_200[1]) == 3 + 5 + 1 + 2 + 2
        assert value(after, token_400[0], **token_400[1]) - value(
            before, token_400[0], **token_400[1]) == 2 + 3
        assert value(after, "baton_events_pending") == pending
        assert 0 <= value(after, "baton_events_oldest_pending_seconds") < 600


def test_arbitrary_methods_share_one_series_and_one_cache_entry(client):
    """A client inventing HTTP methods must not grow the per-process cache of histogram
    children (it once kept one entry per raw method: megabytes after 60k methods)."""
    from app import metrics

    client.open("/healthz", method="BREW")  # warm the `other` entry
    before = len(metrics._durations)
    for i in range(200):
        assert client.open("/healthz", method=f"M{i}X").status_code == 405
    assert len(metrics._durations) == before
    samples = parse(client.get("/metrics").get_data(as_text=True))
    methods = {dict(labels).get("method") for name, labels in samples
               if name.startswith("baton_http_request_duration_seconds")}
    assert not any(m and m.startswith("M") and m.endswith("X") for m in methods)
    assert "other" in methods
