"""What every tenant-scoped blueprint does alike: the clock, and the slug's format check."""
from __future__ import annotations

from datetime import datetime
from datetime import timezone
from typing import Any

from app.errors import NotFound
from app.models.tenant import valid_slug


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def check_tenant_slug(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """A blueprint's url_value_preprocessor: a malformed slug is an unknown tenant (404),
    before any query. Only the format: the tenant itself is resolved inside each service's
    transaction (tenant_scope)."""
    if not valid_slug((values or {}).get("tenant", "")):
        raise NotFound("Unknown tenant.")
