"""Per-process state derived once from the configuration: keys and the password hasher."""
from __future__ import annotations

from dataclasses import dataclass

from flask import Flask
from flask import current_app

from app.crypto import Passwords
from app.crypto import derive_key


@dataclass(frozen=True)
class Runtime:
    passwords: Passwords
    successor_key: bytes  # HMAC key deriving a refresh token's successor
    key_encryption_key: bytes  # AES key protecting signing keys at rest
    lock_timeout_ms: int
    retry_after_s: int
    audience: str
    login_limits: dict  # keyword arguments of ratelimit.reserve_attempt
    tenant_cache_s: float


def init_runtime(app: Flask) -> None:
    secret = app.config["SECRET_KEY"]
    app.extensions["baton"] = Runtime(
        passwords=Passwords(
            app.config["ARGON2_TIME_COST"],
            app.config["ARGON2_MEMORY_KIB"],
            app.config["ARGON2_PARALLELISM"],
        ),
        successor_key=derive_key(secret, "baton refresh-token successor v1"),
        key_encryption_key=derive_key(secret, "baton signing-key encryption v1"),
        lock_timeout_ms=app.config["LOCK_TIMEOUT_MS"],
        retry_after_s=app.config["RETRY_AFTER_S"],
        audience=app.config["ACCESS_TOKEN_AUDIENCE"],
        tenant_cache_s=app.config["TENANT_CACHE_S"],
        login_limits={
            "window_s": app.config["LOGIN_WINDOW_S"],
            "max_per_user": app.config["LOGIN_MAX_PER_USER"],
            "max_per_address": app.config["LOGIN_MAX_PER_ADDRESS"],
        },
    )


def runtime() -> Runtime:
    """The current app's Runtime."""
    return current_app.extensions["baton"]
