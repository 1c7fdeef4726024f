"""Hostile credentials that must never reach the database driver: a JWT header whose `kid`
holds a NUL or a lone surrogate, and an admin list cursor that decodes to one. Each is a
clean 4xx (or RFC 7009's 200), never a 500."""
from __future__ import annotations

import base64
import json

import pytest

ACME = "/v1/tenants/acme"


def forged_jwt(kid: str) -> str:
    """A token whose header names `kid`; the signature does not matter (it is never checked)."""
    def part(obj) -> str:
        raw = json.dumps(obj).encode("utf-8", "surrogatepass")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return ".".join([part({"alg": "EdDSA", "typ": "JWT", "kid": kid}), part({"sub": "1"}), "AA"])


@pytest.mark.parametrize("kid", ["\u0000", "\ud800", "a b", "x" * 129])
def test_bearer_endpoints_refuse_a_hostile_kid(client, tokens, kid):
    tokens.login()  # the tenant has a key and a session, so the lookup would really run
    bearer = {"Authorization": f"Bearer {forged_jwt(kid)}"}
    for method, path in (("GET", "/userinfo"), ("GET", "/sessions"),
                         ("DELETE", "/sessions/00000000-0000-0000-0000-000000000000")):
        response = client.open(ACME + path, method=method, headers=bearer)
        assert response.status_code == 401, (path, response.get_data(as_text=True))
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    revoked = client.post(ACME + "/revoke", data={"token": forged_jwt(kid)})
    assert revoked.status_code == 200  # RFC 7009: unknown tokens are not an error


@pytest.mark.parametrize("cursor", ["AA", "AAAA", base64.urlsafe_b64encode(b"u" * 151).decode(),
                                    "%%%", ""])
def test_admin_list_cursor_that_is_no_username_is_400(admin, cursor):
    response = admin("GET", f"/users?cursor={cursor}")
    if cursor == "":
        assert response.status_code == 200  # an empty cursor is the first page
        return
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["error_description"].startswith("cursor")
