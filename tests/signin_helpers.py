"""Driving SPEC §13's sign-in over HTTP: PKCE pairs, TOTP codes, the challenge flow and the
self-service factor endpoints, through the Flask test client or `requests`."""
from __future__ import annotations

import secrets
from datetime import datetime
from datetime import timedelta
from typing import Any

import pyotp

from app.services.signin.codes import s256
from tests import secret_registry
from tests.helpers import PASSWORD
from tests.helpers import utcnow


def pkce() -> tuple[str, str]:
    """(code_verifier, code_challenge) for S256."""
    verifier = secrets.token_urlsafe(48)
    secret_registry.remember(verifier)
    return verifier, s256(verifier)


def totp_code(secret: str, at: datetime | None = None, steps: int = 0) -> str:
    """The TOTP code of `secret` for the time step of `at` (+ `steps` periods)."""
    moment = (at or utcnow()) + timedelta(seconds=30 * steps)
    return pyotp.TOTP(secret).at(moment)


class SignIn:
    """The challenge flow and the factor endpoints of one tenant, over the test client."""

    def __init__(self, client: Any, tenant: str = "acme") -> None:
        self.client, self.tenant = client, tenant

    @property
    def base(self) -> str:
        return f"/v1/tenants/{self.tenant}"

    def challenge(self, **fields: str) -> Any:
        return self.client.post(f"{self.base}/authorize-challenge", data=fields)

    def start(self, username: str = "alice", password: str = PASSWORD,
              verifier_challenge: tuple[str, str] | None = None, **extra: str) -> tuple[Any, str]:
        """The first request; (response, code_verifier)."""
        verifier, challenge = verifier_challenge or pkce()
        response = self.challenge(username=username, password=password,
                                  code_challenge=challenge, code_challenge_method="S256",
                                  **extra)
        return response, verifier

    def redeem(self, code: str, verifier: str, **extra: str) -> Any:
        return self.client.post(f"{self.base}/token", data={
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            **extra})

    def sign_in(self, username: str = "alice", password: str = PASSWORD, *,
                otp_secret: str | None = None, recovery_code: str | None = None,
                **extra: str) -> dict:
        """A whole sign-in that must succeed; the token response."""
        response, verifier = self.start(username, password, **extra)
        if response.status_code == 400:
            body = response.get_json()
            assert body["error"] == "insufficient_authorization", body
            answer = ({"recovery_code": recovery_code} if recovery_code
                      else {"otp": totp_code(otp_secret or "", steps=1)})  # confirm spent now
            response = self.challenge(auth_session=body["auth_session"], **answer)
        assert response.status_code == 200, response.get_json()
        tokens = self.redeem(response.get_json()["authorization_code"], verifier, **{
            k: v for k, v in extra.items() if k == "client_id"})
        assert tokens.status_code == 200, tokens.get_json()
        return tokens.get_json()

    def mfa(self, method: str, path: str, token: str, **kw: Any) -> Any:
        return self.client.open(f"{self.base}/mfa{path}", method=method,
                                headers={"Authorization": f"Bearer {token}"}, **kw)

    def enrol_totp(self, token: str, name: str = "phone") -> tuple[str, str, list[str], str]:
        """Enrol and confirm a TOTP factor; (factor id, secret, recovery codes or [], the
        code the confirmation spent)."""
        started = self.mfa("POST", "/totp", token, data={"name": name})
        assert started.status_code == 201, started.get_json()
        body = started.get_json()
        code = totp_code(body["secret"])
        confirmed = self.mfa("POST", f"/totp/{body['id']}/confirm", token, data={"code": code})
        assert confirmed.status_code == 200, confirmed.get_json()
        return body["id"], body["secret"], confirmed.get_json().get("recovery_codes", []), code
