"""Bearer credentials (RFC 6750 §2.1) and admin-key authentication (SPEC §9).

`bearer_credential` reads `Authorization: Bearer …` for user access tokens and admin keys
alike. `authenticate(scope)` checks the request's admin key against the tenant in the URL and
keeps the principal in `g.admin_key`; `require_admin_key(scope)` is the same as a view
decorator, for endpoints outside the admin blueprint (RFC 7662 introspection).
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
ADMIN_KEY_REQUIRED = "A valid admin key is required."


def bearer_credential(max_length: int, refusal: str | None = None) -> str:
    """The request's bearer credential, or InvalidToken (401) with `refusal` as description."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or len(credential) > max_length:
        raise InvalidToken(refusal)
    return credential


def authenticate(scope: str) -> AdminPrincipal:
    """The request's admin key for the URL's tenant, with `scope`; 401 or 403 otherwise."""
    tenant = (request.view_args or {}).get("tenant", "")
    key = bearer_credential(MAX_KEY_LENGTH, ADMIN_KEY_REQUIRED)
    try:
        principal = admin_keys.authenticate(tenant, key, scope, datetime.now(timezone.utc))
    except AccessDenied:
        raise InvalidToken(ADMIN_KEY_REQUIRED) from None
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
