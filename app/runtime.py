"""Per-process state derived once from the settings: keys and the password hasher."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from flask import current_app

from app.crypto import Passwords
from app.crypto import derive_key
from config import LoginLimits
from config import Settings

SUCCESSOR_PURPOSE = "baton refresh-token successor v1"
KEY_ENCRYPTION_PURPOSE = "baton signing-key encryption v1"
CONSOLE_FORM_PURPOSE = "baton console form token v1"


@dataclass(frozen=True)
class Runtime:
    passwords: Passwords
    # HMAC keys deriving a refresh token's successor: the current secret's first, then
    # those of SECRET_KEY_FALLBACKS (a duplicate of a rotation made before a secret change).
    successor_keys: tuple[bytes, ...]
    # AES keys protecting signing keys at rest, in the same order; new keys use the first.
    key_encryption_keys: tuple[bytes, ...]
    # HMAC keys of the console's form (CSRF) tokens, in the same order; new forms use the first.
    console_form_keys: tuple[bytes, ...]
    lock_timeout_ms: int
    retry_after_s: int
    audience: str
    login_limits: LoginLimits
    tenant_cache_s: float

    @property
    def successor_key(self) -> bytes:
        return self.successor_keys[0]

    @property
    def key_encryption_key(self) -> bytes:
        return self.key_encryption_keys[0]


def init_runtime(app: Flask) -> None:
    settings: Settings = app.extensions["baton_settings"]
    secrets = settings.secrets
    app.extensions["baton"] = Runtime(
        passwords=Passwords(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism,
        ),
        successor_keys=tuple(derive_key(s, SUCCESSOR_PURPOSE) for s in secrets),
        key_encryption_keys=tuple(derive_key(s, KEY_ENCRYPTION_PURPOSE) for s in secrets),
        console_form_keys=tuple(derive_key(s, CONSOLE_FORM_PURPOSE) for s in secrets),
        lock_timeout_ms=settings.lock_timeout_ms,
        retry_after_s=settings.retry_after_s,
        audience=settings.access_token_audience,
        tenant_cache_s=settings.tenant_cache_s,
        login_limits=settings.login_limits,
    )


def runtime() -> Runtime:
    """The current app's Runtime."""
    return current_app.extensions["baton"]
