"""Baton configuration: the only module that reads the environment.

`BATON_ENV` picks the defaults: `production` (the default, so nothing insecure is
used unless asked for), `development` (what `make run` sets) or `test`. The
environment is read once, in `create_app` (`load_settings`), into a frozen, typed
`Settings`; every value is range-checked there, and a bad one stops startup with
one line naming the variable. The app sees the settings both as `app.config`
keys (LOCK_TIMEOUT_MS, BASE_URL, ...) and as `app.extensions["baton_settings"]`.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

BASE_DIR = Path(__file__).resolve().parent
MIN_SECRET_LENGTH = 32


INSECURE_DEV_SECRET = "baton-development-secret-not-for-production"


class ConfigurationError(RuntimeError):
    """A setting that stops startup; its message is the one line the operator sees."""


class Secret:
    """A secret value that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class LoginLimits:
    """Failed-login allowances per window (SPEC §11)."""

    window_s: int
    per_user_address: int  # per (tenant, username, client address)
    per_user: int  # per (tenant, username), from any address
    per_address: int  # per client address, across every tenant


def psycopg2_url(url: str | None) -> str | None:
    """Pin a plain postgresql:// URL to psycopg2 (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if not url:
        return None
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _setting(env: str | None, *, low: int | None = None, high: int | None = None) -> Any:
    """A Settings field: its environment variable and, for integers, its allowed range."""
    return field(metadata={"env": env, "low": low, "high": high})


@dataclass(frozen=True)
class Settings:
    """Every setting of one process, typed and checked. `KEY` in app.config is `key` here."""

    env_name: str = _setting("BATON_ENV")
    secret_key: Secret | None = _setting("SECRET_KEY")
    # Older secrets, still accepted for decryption, successor derivation and reset tokens.
    secret_key_fallbacks: tuple[Secret, ...] = _setting("SECRET_KEY_FALLBACKS")
    sqlalchemy_database_uri: Secret | None = _setting("DATABASE_URL")
    allow_embedded_database: bool = _setting(None)
    embedded_pgdata: str = _setting("BATON_PGDATA")

    # Bounded waits (SPEC §5). 0 would mean "wait forever" to PostgreSQL: refused.
    lock_timeout_ms: int = _setting("BATON_LOCK_TIMEOUT_MS", low=1, high=60_000)
    statement_timeout_ms: int = _setting("BATON_STATEMENT_TIMEOUT_MS", low=1, high=600_000)
    connect_timeout_s: int = _setting("BATON_CONNECT_TIMEOUT_S", low=1, high=60)
    db_pool_size: int = _setting("BATON_DB_POOL_SIZE", low=1, high=100)
    db_pre_ping: bool = _setting("BATON_DB_PRE_PING")
    retry_after_s: int = _setting("BATON_RETRY_AFTER_S", low=1, high=3600)
    tenant_cache_s: int = _setting("BATON_TENANT_CACHE_S", low=0, high=300)

    max_content_length: int = _setting("BATON_MAX_BODY_BYTES", low=1024, high=1024 * 1024)
    # Public URL of the service: `iss`, the metadata and the JWKS location (SPEC §4.1).
    base_url: str = _setting("BATON_BASE_URL")
    access_token_audience: str = _setting("BATON_AUDIENCE")
    # X-Forwarded-For/Proto are honoured from this many proxies (0 = none) ...
    trusted_proxies: int = _setting("BATON_TRUSTED_PROXIES", low=0, high=10)
    # ... and X-Forwarded-Host/Port/Prefix only when this says so as well.
    trust_forwarded_host: bool = _setting("BATON_TRUST_FORWARDED_HOST")

    argon2_time_cost: int = _setting("BATON_ARGON2_TIME_COST", low=1, high=100)
    argon2_memory_kib: int = _setting("BATON_ARGON2_MEMORY_KIB", low=1024, high=4 * 1024 * 1024)
    argon2_parallelism: int = _setting("BATON_ARGON2_PARALLELISM", low=1, high=64)

    login_window_s: int = _setting("BATON_LOGIN_WINDOW_S", low=1, high=86_400)
    login_max_per_user_address: int = _setting("BATON_LOGIN_MAX_PER_USER_ADDRESS",
                                               low=1, high=100_000)
    login_max_per_user: int = _setting("BATON_LOGIN_MAX_PER_USER", low=1, high=100_000)
    login_max_per_address: int = _setting("BATON_LOGIN_MAX_PER_ADDRESS", low=1, high=100_000)

    reset_token_ttl_s: int = _setting("BATON_RESET_TOKEN_TTL_S", low=1, high=7 * 86_400)
    # Prometheus metrics at /metrics (SPEC §12); BATON_METRICS=0: no counting, /metrics 404.
    metrics_enabled: bool = _setting("BATON_METRICS")

    @property
    def login_limits(self) -> LoginLimits:
        return LoginLimits(self.login_window_s, self.login_max_per_user_address,
                           self.login_max_per_user, self.login_max_per_address)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The current secret first, then the fallbacks, newest first."""
        current = (self.secret_key.get(),) if self.secret_key else ()
        return current + tuple(s.get() for s in self.secret_key_fallbacks)

    def flask_config(self) -> dict[str, Any]:
        """The app.config keys other modules read (secrets as plain strings, as Flask wants)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Secret):
                value = value.get()
            elif f.name == "secret_key_fallbacks":
                value = [s.get() for s in value]
            out[f.name.upper()] = value
        return out


class Config:
    """Defaults shared by every environment; production values unless overridden.

    Each class holds defaults only: the environment is read by `load_settings`.
    """

    ENV_NAME = "production"
    SECRET_KEY: str | None = None
    SECRET_KEY_FALLBACKS: tuple[str, ...] = ()
    SQLALCHEMY_DATABASE_URI: str | None = None
    # Production never starts a database of its own: DATABASE_URL is required.
    ALLOW_EMBEDDED_DATABASE = False
    EMBEDDED_PGDATA = str(BASE_DIR / "instance" / "pgdata")

    LOCK_TIMEOUT_MS = 2000
    STATEMENT_TIMEOUT_MS = 10000
    CONNECT_TIMEOUT_S = 3
    DB_POOL_SIZE = 2
    # Pre-ping costs a round trip per request. Without it a connection that died (database
    # restart) fails one request with 503, and SQLAlchemy then recycles the whole pool.
    DB_PRE_PING = False
    RETRY_AFTER_S = 1
    # How long a worker may use cached tenant settings and signing key (tenant_cache.py).
    TENANT_CACHE_S = 5

    MAX_CONTENT_LENGTH = 16 * 1024
    # Required in production (SPEC §3): nothing a client sends may choose the issuer.
    BASE_URL = ""
    ACCESS_TOKEN_AUDIENCE = "baton"
    TRUSTED_PROXIES = 0
    TRUST_FORWARDED_HOST = False

    # argon2id cost (argon2-cffi defaults: RFC 9106 low-memory profile).
    ARGON2_TIME_COST = 3
    ARGON2_MEMORY_KIB = 65536
    ARGON2_PARALLELISM = 4

    # Failed-login allowances per window (SPEC §11; docs/operations.md has the trade-off).
    LOGIN_WINDOW_S = 300
    LOGIN_MAX_PER_USER_ADDRESS = 5
    LOGIN_MAX_PER_USER = 50
    LOGIN_MAX_PER_ADDRESS = 30

    # Lifetime of tokens printed by `flask users reset-link`.
    RESET_TOKEN_TTL_S = 3600

    # Prometheus metrics at /metrics (SPEC §12); 0 turns counting off and /metrics into 404.
    METRICS_ENABLED = True

    SQLALCHEMY_RECORD_QUERIES = False
    JSON_SORT_KEYS = False


class ProductionConfig(Config):
    """Production: every secret, the database and the public URL come from the environment."""


class DevelopmentConfig(Config):
    """`make run`: embedded PostgreSQL under instance/ and a fixed, public dev secret."""

    ENV_NAME = "development"
    SECRET_KEY = INSECURE_DEV_SECRET
    ALLOW_EMBEDDED_DATABASE = True
    BASE_URL = "http://127.0.0.1:8000"


class TestConfig(Config):
    """The test suite: cheap password hashing; the database URL is given by the fixtures."""

    ENV_NAME = "test"
    TESTING = True
    SECRET_KEY = "baton-test-secret-0123456789abcdef"
    ALLOW_EMBEDDED_DATABASE = True
    # Only for a BATON_ENV=test command run by hand: the suite (tests/plugins/database.py)
    # passes its own URL, an embedded server in the run's temporary directory or a server.
    EMBEDDED_PGDATA = str(BASE_DIR / "instance" / "test-pgdata")
    BASE_URL = "http://baton.test"
    ARGON2_TIME_COST = 1
    ARGON2_MEMORY_KIB = 1024
    ARGON2_PARALLELISM = 1


CONFIGS = {
    "production": ProductionConfig,
    "development": DevelopmentConfig,
    "test": TestConfig,
}


def select_config(environ: Mapping[str, str] | None = None) -> type[Config]:
    """The config class named by BATON_ENV (default production)."""
    environ = os.environ if environ is None else environ
    name = environ.get("BATON_ENV", "production").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise ConfigurationError(
            f"BATON_ENV must be one of {', '.join(CONFIGS)}, got {name!r}"
        ) from None


def test_database_url() -> str | None:
    """The server the test suite should use instead of an embedded one."""
    return psycopg2_url(os.environ.get("TEST_DATABASE_URL"))


def _parse_int(f: dataclasses.Field, env: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ConfigurationError(f"{env} must be an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ConfigurationError(f"{env} must be an integer, got {value!r}") from None
    low, high = f.metadata["low"], f.metadata["high"]
    if (low is not None and number < low) or (high is not None and number > high):
        raise ConfigurationError(f"{env} must be between {low} and {high}, got {number}")
    return number


def _parse_bool(f: dataclasses.Field, env: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigurationError(f"{env} must be 0 or 1, got {value!r}")


def _parse_secret(f: dataclasses.Field, env: str, value: Any) -> Secret | None:
    if value is None or value == "":
        return None
    text = value.get() if isinstance(value, Secret) else str(value)
    return Secret((psycopg2_url(text) or text) if f.name == "sqlalchemy_database_uri" else text)


def _parse_secrets(f: dataclasses.Field, env: str, value: Any) -> tuple[Secret, ...]:
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value or ())
    return tuple(v if isinstance(v, Secret) else Secret(str(v)) for v in items)


_PARSERS = {"int": _parse_int, "bool": _parse_bool, "Secret | None": _parse_secret,
            "tuple[Secret, ...]": _parse_secrets}


def _parse(f: dataclasses.Field, value: Any) -> Any:
    """One setting from a default, an override (typed) or the environment (text)."""
    parser = _PARSERS.get(str(f.type))  # annotations are strings (`from __future__`)
    if parser is None:
        return "" if value is None else str(value)
    return parser(f, f.metadata["env"] or f.name.upper(), value)


def load_settings(config_class: type | None = None, overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults of the environment's class, then the environment, then overrides; checked."""
    environ = os.environ if environ is None else environ
    config_class = config_class or select_config(environ)
    overrides = overrides or {}
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        key = f.name.upper()
        raw = getattr(config_class, key)
        env = f.metadata["env"]
        if env and env != "BATON_ENV" and environ.get(env, "") != "":
            raw = environ[env]
        if key in overrides:
            raw = overrides[key]
        values[f.name] = _parse(f, raw)
    values["base_url"] = values["base_url"].rstrip("/")
    settings = Settings(**values)
    check_settings(settings)
    return settings


def _check_secret(name: str, secret: str) -> None:
    if len(secret) < MIN_SECRET_LENGTH or secret == INSECURE_DEV_SECRET:
        raise ConfigurationError(
            f"{name} must be a random string of at least {MIN_SECRET_LENGTH} characters "
            "(or set BATON_ENV=development for a local setup)"
        )


def _check_base_url(base_url: str) -> None:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or parts.username:
        raise ConfigurationError(
            f"BATON_BASE_URL must be an http(s) URL like https://auth.example.com, got {base_url!r}"
        )


DATABASE_URL_FORM = "postgresql://user:password@host:5432/dbname"
# The drivers a DATABASE_URL may name once psycopg2_url has pinned postgresql:// to psycopg2.
DATABASE_DRIVERS = ("postgresql+psycopg2", "postgresql")


def _check_database_url(url: str) -> None:
    """A PostgreSQL URL psycopg2 accepts, or one line saying what is wrong with it, before
    SQLAlchemy sees it (its errors are tracebacks). The URL itself is never echoed: it may
    hold the password."""
    from psycopg2 import ProgrammingError
    from psycopg2.extensions import make_dsn
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if "://" not in url:
        raise ConfigurationError(f"DATABASE_URL must be a URL like {DATABASE_URL_FORM}: "
                                 "it has no scheme")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigurationError(
            f"DATABASE_URL is not a URL like {DATABASE_URL_FORM} (is the port a number, and "
            "are special characters in the password %-encoded?)") from None
    if parsed.drivername not in DATABASE_DRIVERS:
        scheme = url.split("://", 1)[0]
        raise ConfigurationError(f"DATABASE_URL must start with postgresql:// (Baton runs on "
                                 f"PostgreSQL through psycopg2), not {scheme}://")
    try:  # the query is libpq's connection options: psycopg2 checks their names
        make_dsn(**{name: "x" for name in parsed.query})
    except ProgrammingError as exc:
        reason = str(exc).strip().removeprefix("invalid dsn: ")
        raise ConfigurationError(f"DATABASE_URL: {reason} (the query string holds libpq "
                                 "connection parameters such as sslmode)") from None


# OWASP's floor for argon2id (19 MiB, 2 passes): below it, test-suite costs in production.
MIN_PRODUCTION_ARGON2_MEMORY_KIB = 19 * 1024
MIN_PRODUCTION_ARGON2_TIME_COST = 2


def _check_production(settings: Settings) -> None:
    _check_secret("SECRET_KEY", settings.secret_key.get() if settings.secret_key else "")
    if settings.argon2_memory_kib < MIN_PRODUCTION_ARGON2_MEMORY_KIB \
            or settings.argon2_time_cost < MIN_PRODUCTION_ARGON2_TIME_COST:
        raise ConfigurationError(
            f"BATON_ARGON2_MEMORY_KIB must be at least {MIN_PRODUCTION_ARGON2_MEMORY_KIB} and "
            f"BATON_ARGON2_TIME_COST at least {MIN_PRODUCTION_ARGON2_TIME_COST} in production"
        )
    for old in settings.secret_key_fallbacks:
        _check_secret("each of SECRET_KEY_FALLBACKS", old.get())
    if settings.sqlalchemy_database_uri is None:
        raise ConfigurationError(
            "DATABASE_URL must be set in production (postgresql://user:pass@host/db)"
        )
    if not settings.base_url:
        raise ConfigurationError(
            "BATON_BASE_URL must be set in production (the public URL, e.g. "
            "https://auth.example.com): it is the issuer of every token"
        )


def check_settings(settings: Settings) -> None:
    """Refuse to start with an insecure, incomplete or out-of-range configuration."""
    if settings.secret_key is None:
        raise ConfigurationError(
            f"SECRET_KEY must be set to a random string of at least {MIN_SECRET_LENGTH} "
            "characters (or set BATON_ENV=development for a local setup)"
        )
    if settings.env_name == "production":
        _check_production(settings)
    elif settings.env_name == "development" and settings.sqlalchemy_database_uri is not None \
            and settings.secret_key.get() == INSECURE_DEV_SECRET:
        # The public development secret never meets a real database server.
        raise ConfigurationError(
            "SECRET_KEY must be set when BATON_ENV=development uses DATABASE_URL "
            "(the built-in development secret is public)"
        )
    if settings.sqlalchemy_database_uri is not None:
        _check_database_url(settings.sqlalchemy_database_uri.get())
    if settings.base_url:
        _check_base_url(settings.base_url)
    if settings.trust_forwarded_host and settings.trusted_proxies == 0:
        raise ConfigurationError(
            "BATON_TRUST_FORWARDED_HOST needs BATON_TRUSTED_PROXIES (the number of proxies) > 0"
        )
    if settings.argon2_memory_kib < 8 * settings.argon2_parallelism:
        raise ConfigurationError(
            "BATON_ARGON2_MEMORY_KIB must be at least 8 x BATON_ARGON2_PARALLELISM"
        )
    if settings.statement_timeout_ms < settings.lock_timeout_ms:
        raise ConfigurationError(
            "BATON_STATEMENT_TIMEOUT_MS must not be shorter than BATON_LOCK_TIMEOUT_MS"
        )


def engine_options(settings: Mapping[str, Any]) -> dict:
    """psycopg2 connection settings: timeouts inside each transaction, no startup options.

    Nothing here relies on session state, so a transaction pooler (PgBouncer in
    `pool_mode = transaction`) may hand each transaction to another server connection:
    the timeouts are SET LOCAL with the first statement (app/pgtimeouts.py), and psycopg2
    never uses server-side prepared statements.
    """
    from app.database.timeouts import timeout_cursor
    from app.database.timeouts import timeout_prefix

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
