"""Admin-key authentication (SPEC §9): `Authorization: Bearer bat_…`, one tenant, one scope.

`authenticate(scope)` checks the request's key against the tenant in the URL and keeps the
principal in `g.admin_key`; `require_admin_key(scope)` is the same as a view decorator, for
endpoints outside the admin blueprint (the RFC 7662 introspection endpoint).
"""
from __future__ import annotations

import functools
from datetime import datetime
from datetime import timezone
from typing import Any
from typing import Callable

from flask import g
from flask import request

from app.errors import InvalidToken
from app.services.errors import AccessDenied
from app.services.tenancy import admin_keys
from app.services.tenancy.admin_keys import AdminPrincipal

MAX_KEY_LENGTH = 256


def presented_key() -> str:
    """The bearer credential of the request (RFC 6750 §2.1), or InvalidToken (401)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidToken("A valid admin key is required.")
    return key


def authenticate(scope: str) -> AdminPrincipal:
    """The request's admin key for the URL's tenant, with `scope`; 401 or 403 otherwise."""
    tenant = (request.view_args or {}).get("tenant", "")
    try:
        principal = admin_keys.authenticate(tenant, presented_key(), scope,
                                            datetime.now(timezone.utc))
    except AccessDenied:
        raise InvalidToken("A valid admin key is required.") from None
    g.admin_key = principal
    return principal


def require_admin_key(scope: str) -> Callable:
    """View decorator: authenticate with an admin key of the URL's tenant holding `scope`."""

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            authenticate(scope)
            return view(*args, **kwargs)

        return wrapper

    return decorator
