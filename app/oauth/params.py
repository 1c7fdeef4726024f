"""The token request's grants, typed (RFC 6749 §4.3.2, §6): a table, not an if-ladder."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from app.errors import UnsupportedGrantType
from app.http.wire import bounded
from app.http.wire import require
from app.services.accounts.users import validate_credentials


@dataclass(frozen=True)
class PasswordGrant:
    """RFC 6749 §4.3.2."""

    username: str
    password: str


@dataclass(frozen=True)
class RefreshGrant:
    """RFC 6749 §6."""

    refresh_token: str


def _password_grant(params: dict[str, str]) -> PasswordGrant:
    username, password = require(params, "username"), require(params, "password")
    validate_credentials(username, password)  # length limits before any hashing
    return PasswordGrant(username, password)


def _refresh_grant(params: dict[str, str]) -> RefreshGrant:
    return RefreshGrant(bounded(require(params, "refresh_token"), "refresh_token"))


GRANT_TYPES: dict[str, Callable[[dict[str, str]], PasswordGrant | RefreshGrant]] = {
    "password": _password_grant,
    "refresh_token": _refresh_grant,
}


def parse_grant(params: dict[str, str]) -> PasswordGrant | RefreshGrant:
    """The token request's grant, typed; UnsupportedGrantType for any other grant_type."""
    parse = GRANT_TYPES.get(require(params, "grant_type"))
    if parse is None:
        raise UnsupportedGrantType()
    return parse(params)
