"""Baton configuration: the only module that reads the environment.

`BATON_ENV` picks the class: `production` (the default, so nothing insecure is
used unless asked for), `development` (what `make run` sets) or `test`.
"""
from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
MIN_SECRET_LENGTH = 32


INSECURE_DEV_SECRET = "baton-development-secret-not-for-production"


class ConfigurationError(RuntimeError):
    """A setting that stops startup; its message is the one line the operator sees."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def psycopg2_url(url: str | None) -> str | None:
    """Pin a plain postgresql:// URL to psycopg2 (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if not url:
        return None
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


class Config:
    """Settings shared by every environment; production values unless overridden."""

    ENV_NAME = "production"
    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = psycopg2_url(os.environ.get("DATABASE_URL"))
    # Production never starts a database of its own: DATABASE_URL is required.
    ALLOW_EMBEDDED_DATABASE = False
    EMBEDDED_PGDATA = os.environ.get("BATON_PGDATA") or str(BASE_DIR / "instance" / "pgdata")

    # Bounded waits (SPEC §5): set on every connection, so no round trip per transaction.
    LOCK_TIMEOUT_MS = _int("BATON_LOCK_TIMEOUT_MS", 2000)
    STATEMENT_TIMEOUT_MS = _int("BATON_STATEMENT_TIMEOUT_MS", 10000)
    CONNECT_TIMEOUT_S = _int("BATON_CONNECT_TIMEOUT_S", 3)
    DB_POOL_SIZE = _int("BATON_DB_POOL_SIZE", 2)
    # Pre-ping costs a round trip per request. Without it a connection that died (database
    # restart) fails one request with 503, and SQLAlchemy then recycles the whole pool.
    DB_PRE_PING = _int("BATON_DB_PRE_PING", 0) == 1
    RETRY_AFTER_S = _int("BATON_RETRY_AFTER_S", 1)
    # How long a worker may use cached tenant settings and signing key (tenant_cache.py).
    TENANT_CACHE_S = _int("BATON_TENANT_CACHE_S", 5)

    MAX_CONTENT_LENGTH = _int("BATON_MAX_BODY_BYTES", 16 * 1024)
    # Public URL of the service, used for `iss` and metadata; empty means the request's host.
    BASE_URL = os.environ.get("BATON_BASE_URL", "").rstrip("/")
    ACCESS_TOKEN_AUDIENCE = os.environ.get("BATON_AUDIENCE", "baton")
    # Honour X-Forwarded-* only behind a proxy that sets them (count of proxies, 0 = none).
    TRUSTED_PROXIES = _int("BATON_TRUSTED_PROXIES", 0)

    # argon2id cost (argon2-cffi defaults: RFC 9106 low-memory profile).
    ARGON2_TIME_COST = _int("BATON_ARGON2_TIME_COST", 3)
    ARGON2_MEMORY_KIB = _int("BATON_ARGON2_MEMORY_KIB", 65536)
    ARGON2_PARALLELISM = _int("BATON_ARGON2_PARALLELISM", 4)

    # Password-login throttling: attempts per window, per username and per client address.
    LOGIN_WINDOW_S = _int("BATON_LOGIN_WINDOW_S", 300)
    LOGIN_MAX_PER_USER = _int("BATON_LOGIN_MAX_PER_USER", 5)
    LOGIN_MAX_PER_ADDRESS = _int("BATON_LOGIN_MAX_PER_ADDRESS", 30)

    # Lifetime of tokens printed by `flask users reset-link`.
    RESET_TOKEN_TTL_S = _int("BATON_RESET_TOKEN_TTL_S", 3600)

    SQLALCHEMY_RECORD_QUERIES = False
    JSON_SORT_KEYS = False



class ProductionConfig(Config):
    """Production: every secret and the database must come from the environment."""


class DevelopmentConfig(Config):
    """`make run`: embedded PostgreSQL under instance/ and a fixed, public dev secret."""

    ENV_NAME = "development"
    SECRET_KEY = os.environ.get("SECRET_KEY") or INSECURE_DEV_SECRET
    ALLOW_EMBEDDED_DATABASE = True
    BASE_URL = os.environ.get("BATON_BASE_URL", "http://127.0.0.1:8000").rstrip("/")


class TestConfig(Config):
    """The test suite: cheap password hashing; the database URL is given by the fixtures."""

    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = os.environ.get("SECRET_KEY") or "baton-test-secret-0123456789abcdef"
    ALLOW_EMBEDDED_DATABASE = True
    EMBEDDED_PGDATA = os.environ.get("BATON_PGDATA") or str(BASE_DIR / "instance" / "test-pgdata")
    BASE_URL = os.environ.get("BATON_BASE_URL", "http://baton.test").rstrip("/")
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_KIB = 1024
    ARGON2_PARALLELISM = 1


CONFIGS = {
    "production": ProductionConfig,
    "development": DevelopmentConfig,
    "test": TestConfig,
}


def select_config() -> type[Config]:
    """The config class named by BATON_ENV (default production)."""
    name = os.environ.get("BATON_ENV", "production").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigurationError(
            f"BATON_ENV must be one of {', '.join(CONFIGS)}, got {name!r}"
        ) from None


def test_database_url() -> str | None:
    """The server the test suite should use instead of an embedded one."""
    return psycopg2_url(os.environ.get("TEST_DATABASE_URL"))


def engine_options(settings) -> dict:
    """psycopg2 connection settings: timeouts inside each transaction, no startup options.

    Nothing here relies on session state, so a transaction pooler (PgBouncer in
    `pool_mode = transaction`) may hand each transaction to another server connection:
    the timeouts are SET LOCAL with the first statement (app/pgtimeouts.py), and psycopg2
    never uses server-side prepared statements.
    """
    from app.pgtimeouts import timeout_cursor
    from app.pgtimeouts import timeout_prefix

    prefix = timeout_prefix(settings["LOCK_TIMEOUT_MS"], settings["STATEMENT_TIMEOUT_MS"], 60000)
    return {
        "pool_size": settings["DB_POOL_SIZE"],
        "max_overflow": 2,
        "pool_pre_ping": settings["DB_PRE_PING"],
        "pool_timeout": settings["CONNECT_TIMEOUT_S"],
        "connect_args": {"connect_timeout": settings["CONNECT_TIMEOUT_S"],
                         "cursor_factory": timeout_cursor(prefix)},
        # Never put statement parameters (hashes, digests) into exception messages or logs.
        "hide_parameters": True,
    }


def check_settings(settings) -> None:
    """Refuse to start with an insecure or incomplete production configuration."""
    secret = settings.get("SECRET_KEY") or ""
    if settings["ENV_NAME"] == "production":
        if len(secret) < MIN_SECRET_LENGTH or secret == INSECURE_DEV_SECRET:
            raise ConfigurationError(
                f"SECRET_KEY must be set to a random string of at least {MIN_SECRET_LENGTH} "
                "characters (or set BATON_ENV=development for a local setup)"
            )
        if not settings.get("SQLALCHEMY_DATABASE_URI"):
            raise ConfigurationError(
                "DATABASE_URL must be set in production (postgresql://user:pass@host/db)"
            )
    if not secret:
        raise ConfigurationError("SECRET_KEY must not be empty")
