"""What every tenant-scoped blueprint does alike: the clock, the slug's format check, and
the client's address."""
from __future__ import annotations

import logging
import threading
from datetime import datetime
from datetime import timezone
from typing import Any

from flask import current_app
from flask import request

from app.errors import NotFound
from app.models.tenant import valid_slug

log = logging.getLogger(__name__)
_warning_lock = threading.Lock()
NO_ADDRESS_WARNED = "baton_no_client_address_warned"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_tenant_slug(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A blueprint's url_value_preprocessor: a malformed slug is an unknown tenant (404),
    before any query. Only the format: the tenant itself is resolved inside each service's
    transaction (tenant_scope)."""
    if not valid_slug((values or {}).get("tenant", "")):
        raise NotFound("Unknown tenant.")


def client_address() -> str | None:
    """The client's address (X-Forwarded-For's, behind BATON_TRUSTED_PROXIES), or None.

    None happens when the server hands over no address at all: gunicorn on a unix socket,
    with no trusted proxy to say who the client is. Login throttling then counts every such
    request under one shared address (signin.throttling.UNKNOWN_NETWORK); the operator is
    told once per process, at the first such request.
    """
    address = request.remote_addr
    if address:
        return address
    _warn_no_address()
    return None


def _warn_no_address() -> None:
    extensions = current_app.extensions
    with _warning_lock:  # once per process (per app), even under a threaded server
        if extensions.get(NO_ADDRESS_WARNED):
            return
        extensions[NO_ADDRESS_WARNED] = True
    log.warning(
        "a request came without a client address (REMOTE_ADDR is empty: a unix socket and no "
        "trusted proxy?); login throttling counts every such request under one address, "
        "'unknown'. Set BATON_TRUSTED_PROXIES to the number of proxies in front of Baton so "
        "their X-Forwarded-For gives each client its own address",
        extra={"event": "client_address_unknown"})
