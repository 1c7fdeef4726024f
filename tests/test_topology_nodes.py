"""Two app nodes (two gunicorn masters: separate processes, separate caches) on one
database: the races hold with clients split across both, and a key rotated or a setting
changed by an operator reaches both nodes within the tenant cache window (SPEC §7, §12)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import jwt
import pytest
import requests

from app.services.tenancy import signing_keys
from tests import test_rotation_concurrency as races
from tests.helpers import PROJECT_ROOT
from tests.helpers import utcnow
from tests.parallel import run_together
from tests.topology import gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.live]
CACHE_S = 5  # BATON_TENANT_CACHE_S, the documented default


@pytest.fixture(scope="module")
def nodes(app, database_url, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("nodes")
    # One public URL for the whole deployment: it is the `iss` of every access token, so
    # nodes with different ones would answer the same duplicate with different tokens.
    env = {"BATON_TENANT_CACHE_S": str(CACHE_S), "BATON_BASE_URL": "http://baton.test"}
    with gunicorn(database_url, log_dir, workers=2, env=env) as a, \
            gunicorn(database_url, log_dir, workers=2, env=env) as b:
        yield a, b


def test_duplicates_split_across_nodes_get_one_pair(app, nodes):
    races.make_tenant(app, "tabs", reuse_interval=10)
    first = races.login(nodes[0], "tabs")["refresh_token"]
    results = run_together(races.refresh_once,
                           [(nodes[i % 2], "tabs", first) for i in range(32)])
    assert [status for status, _ in results] == [200] * 32, results
    assert len({body["refresh_token"] for _, body in results}) == 1
    assert len({body["access_token"] for _, body in results}) == 1
    assert races.refresh_once(nodes[1], "tabs", results[0][1]["refresh_token"])[0] == 200
    assert races.violations(app) == races.NO_VIOLATIONS


def test_strict_mode_split_across_nodes(app, nodes):
    races.make_tenant(app, "strict", reuse_interval=0)
    first = races.login(nodes[1], "strict")["refresh_token"]
    results = run_together(races.refresh_once,
                           [(nodes[i % 2], "strict", first) for i in range(32)])
    assert sorted(status for status, _ in results) == [200] + [400] * 31
    winner = next(body for status, body in results if status == 200)
    for base in nodes:
        assert races.refresh_once(base, "strict", winner["refresh_token"])[0] == 400
    assert races.violations(app) == races.NO_VIOLATIONS


def test_replay_on_one_node_racing_refresh_on_the_other(app, nodes):
    races.make_tenant(app, "race", reuse_interval=0)
    for round_ in range(10):
        thief, owner = nodes[round_ % 2], nodes[(round_ + 1) % 2]
        stolen = races.login(owner, "race")["refresh_token"]
        status, body = races.refresh_once(owner, "race", stolen)
        assert status == 200
        legit = body["refresh_token"]
        results = run_together(races.refresh_once, [(thief, "race", stolen),
                                                    (owner, "race", legit)])
        assert results[0][0] == 400
        for token in [legit] + [b["refresh_token"] for s, b in results if s == 200]:
            assert races.refresh_once(thief, "race", token)[0] == 400
    assert races.violations(app) == races.NO_VIOLATIONS


def _kid(access_token: str) -> str:
    return jwt.get_unverified_header(access_token)["kid"]


def _verify(access_token: str, base: str, tenant: str) -> None:
    """Verify a token against a node's JWKS, as a resource server would."""
    published = requests.get(f"{base}/v1/tenants/{tenant}/jwks.json", timeout=10).json()
    key = next(k for k in published["keys"] if k["kid"] == _kid(access_token))
    jwt.decode(access_token, jwt.PyJWK(key).key, algorithms=["EdDSA"], audience="baton",
               options={"verify_iss": False})


def test_key_rotated_by_the_operator_reaches_both_nodes_within_the_cache_window(app, nodes):
    races.make_tenant(app, "keys", reuse_interval=10)
    old = {_kid(races.login(base, "keys")["access_token"]) for base in nodes for _ in range(4)}
    assert len(old) == 1  # every worker has the key cached now
    with app.app_context():
        new = signing_keys.rotate_key("keys", utcnow())
    rotated = time.monotonic()
    # Published by both nodes at once, so nothing signed with it is ever unverifiable.
    for base in nodes:
        kids = {k["kid"] for k in requests.get(f"{base}/v1/tenants/keys/jwks.json",
                                               timeout=10).json()["keys"]}
        assert kids >= old | {new}
    # Meanwhile each node signs with the old key or the new one, and every token it signs
    # verifies against the other node's JWKS.
    while time.monotonic() < rotated + CACHE_S + 0.5:
        for i, base in enumerate(nodes):
            access = races.login(base, "keys")["access_token"]
            assert _kid(access) in old | {new}
            _verify(access, nodes[1 - i], "keys")
        time.sleep(0.3)
    # After the window, every worker of both nodes signs with the new key.
    after = [races.login(base, "keys")["access_token"] for base in nodes for _ in range(6)]
    assert {_kid(a) for a in after} == {new}


def _login_answers(base: str, tenant: str, origin: str, count: int) -> list[tuple[int, str]]:
    """`count` logins on fresh connections (so several workers answer): each one's
    `expires_in` and the CORS origin its preflight was allowed (or "")."""
    answers = []
    for _ in range(count):
        expires_in = races.login(base, tenant)["expires_in"]
        preflight = requests.options(f"{base}/v1/tenants/{tenant}/token", timeout=10, headers={
            "Origin": origin, "Access-Control-Request-Method": "POST"})
        answers.append((expires_in, preflight.headers.get("Access-Control-Allow-Origin", "")))
    return answers


def test_tenant_updated_with_the_cli_reaches_both_nodes_within_the_cache_window(
        app, nodes, database_url):
    """`flask tenants update`, run as an operator would (its own process, the shared
    database), changes the access-token TTL and the CORS origins on every worker of both
    nodes within BATON_TENANT_CACHE_S."""
    origin = "https://app.example.com"
    races.make_tenant(app, "upd", reuse_interval=10)
    before = {answer for base in nodes for answer in _login_answers(base, "upd", origin, 4)}
    assert before == {(900, "")}  # the defaults, now cached by the workers that answered
    env = {**os.environ, "BATON_ENV": "test", "DATABASE_URL": database_url,
           "BATON_TENANT_CACHE_S": str(CACHE_S)}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "tenants", "update", "upd",
         "--access-ttl", "120", "--cors-origin", origin],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    updated = time.monotonic()
    assert result.returncode == 0, result.stderr
    assert f"within {CACHE_S} s" in result.stdout
    # Within the window a worker may still answer with an old setting, never anything else
    # (the login and its preflight may reach different workers, so each is checked alone).
    while time.monotonic() < updated + CACHE_S + 0.5:
        for base in nodes:
            [(expires_in, allowed)] = _login_answers(base, "upd", origin, 1)
            assert expires_in in (900, 120) and allowed in ("", origin)
        time.sleep(0.3)
    # After it, every worker of both nodes applies the new ones.
    after = {answer for base in nodes for answer in _login_answers(base, "upd", origin, 6)}
    assert after == {(120, origin)}
