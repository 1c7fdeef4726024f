"""Driving SPEC §13.5's passkey ceremonies over HTTP (the Flask test client), with the
software authenticator of tests/soft_authenticator.py standing in for browser and device."""
from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from tests.signin_helpers import SignIn
from tests.signin_helpers import pkce
from tests.soft_authenticator import SoftAuthenticator

ORIGIN = "https://app.example.com"
RP_ID = "example.com"
TABLES = ("factors", "passkey_registrations", "challenge_sessions", "authorization_codes",
          "recovery_codes", "events", "sessions", "login_attempts", "login_address_attempts")


class Passkeys(SignIn):
    """The challenge flow and the factor endpoints, plus the passkey requests."""

    def options(self, token: str) -> Any:
        return self.mfa("POST", "/passkeys/options", token)

    def register(self, token: str, credential: dict | str, name: str | None = None) -> Any:
        fields = {"credential": credential if isinstance(credential, str)
                  else json.dumps(credential)}
        if name is not None:
            fields["name"] = name
        return self.mfa("POST", "/passkeys", token, data=fields)

    def enrol(self, token: str, authenticator: SoftAuthenticator, name: str = "laptop",
              **knobs: Any) -> dict:
        """Options, the authenticator's credential, registration: the 201 answer."""
        options = self.options(token)
        assert options.status_code == 200, options.get_json()
        registered = self.register(token, authenticator.create(options.get_json(), **knobs),
                                   name)
        assert registered.status_code == 201, registered.get_json()
        return registered.get_json()

    def passwordless(self, username: str | None = None, **extra: str) -> tuple[Any, str]:
        """A passwordless first request; (response, code_verifier)."""
        verifier, challenge = pkce()
        fields = {"passkey": "1", "code_challenge": challenge, "code_challenge_method": "S256",
                  **extra}
        if username is not None:
            fields["username"] = username
        return self.challenge(**fields), verifier

    def answer(self, auth_session: str, credential: dict | str) -> Any:
        return self.challenge(auth_session=auth_session, webauthn_response=(
            credential if isinstance(credential, str) else json.dumps(credential)))

    def sign_in_with(self, authenticator: SoftAuthenticator, username: str | None = None,
                     **knobs: Any) -> dict:
        """A whole passwordless sign-in that must succeed; the token response."""
        start, verifier = self.passwordless(username)
        body = start.get_json()
        assert start.status_code == 400 and body["factors"] == ["passkey"], body
        done = self.answer(body["auth_session"], authenticator.get(body["webauthn"], **knobs))
        assert done.status_code == 200, done.get_json()
        tokens = self.redeem(done.get_json()["authorization_code"], verifier)
        assert tokens.status_code == 200, tokens.get_json()
        return tokens.get_json()


def row_counts(app: Any) -> dict[str, int]:
    """How many rows each sign-in table holds: "nothing half-written" is an equal count."""
    with app.app_context():
        counts = {table: db.session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                  for table in TABLES}
        attempts = db.session.execute(sa.text(
            "SELECT coalesce(sum(attempts), 0) FROM challenge_sessions")).scalar()
        db.session.remove()
    return {**counts, "challenge_attempts": int(attempts)}

