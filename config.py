"""Baton configuration: the only module that reads the environment.

`BATON_ENV` picks the defaults: `production` (the default, so nothing insecure is
used unless asked for), `development` (what `make run` sets) or `test`. The
environment is read once, in `create_app` (`load_settings`), into a frozen, typed
`Settings` (pydantic-settings); every value is range-checked there, and a bad one
stops startup with one line naming the variable. The app sees the settings both as
`app.config` keys (LOCK_TIMEOUT_MS, BASE_URL, ...) and as
`app.extensions["baton_settings"]`.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field
from pydantic import SecretStr
from pydantic import ValidationError
from pydantic import ValidationInfo
from pydantic import field_validator
from pydantic import model_validator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings
from pydantic_settings import EnvSettingsSource
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings import SettingsConfigDict

BASE_DIR = Path(__file__).resolve().parent
MIN_SECRET_LENGTH = 32


INSECURE_DEV_SECRET = "baton-development-secret-not-for-production"


class ConfigurationError(RuntimeError):
    """A setting that stops startup; its message is the one line the operator sees."""


# A secret value that never shows itself in a repr, a log line or a traceback.
Secret = SecretStr


@dataclass(frozen=True)
class LoginLimits:
    """Failed-login allowances per window (SPEC §11), and of wrong second-factor answers."""

    window_s: int
    per_user_address: int  # per (tenant, username, client address)
    per_user: int  # per (tenant, username), from any address
    per_address: int  # per client address, across every tenant
    mfa_answers: int = 5  # wrong answers that end an auth_session (SPEC §13.3)
    mfa_per_user: int = 10  # wrong answers per user in the window, across auth_sessions
    mfa_per_day: int = 30  # wrong answers per user per day


def psycopg2_url(url: str | None) -> str | None:
    """Pin a plain postgresql:// URL to psycopg2 (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if not url:
        return None
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url


def _env(name: str, default: Any, *, ge: int | None = None, le: int | None = None) -> Any:
    """A setting read from the environment variable `name`; `ge`/`le` bound integers."""
    return Field(default, validation_alias=name, ge=ge, le=le)


class Settings(BaseSettings):
    """Every setting of one process, typed and checked. `KEY` in app.config is `key` here.

    The defaults are production's; DevelopmentConfig and TestConfig below change a few.
    """

    # Variable names are case-sensitive, as the environment of every POSIX process is.
    model_config = SettingsConfigDict(frozen=True, case_sensitive=True)

    env_name: str = "production"  # from the environment's class, never from BATON_ENV itself
    secret_key: Secret | None = _env("SECRET_KEY", None)
    # Older secrets, still accepted for decryption, successor derivation and reset tokens.
    secret_key_fallbacks: tuple[Secret, ...] = _env("SECRET_KEY_FALLBACKS", ())
    sqlalchemy_database_uri: Secret | None = _env("DATABASE_URL", None)
    # Production never starts a database of its own: DATABASE_URL is required.
    allow_embedded_database: bool = False
    embedded_pgdata: str = _env("BATON_PGDATA", str(BASE_DIR / "instance" / "pgdata"))

    # Bounded waits (SPEC §5). 0 would mean "wait forever" to PostgreSQL: refused.
    lock_timeout_ms: int = _env("BATON_LOCK_TIMEOUT_MS", 2000, ge=1, le=60_000)
    statement_timeout_ms: int = _env("BATON_STATEMENT_TIMEOUT_MS", 10_000, ge=1, le=600_000)
    connect_timeout_s: int = _env("BATON_CONNECT_TIMEOUT_S", 3, ge=1, le=60)
    db_pool_size: int = _env("BATON_DB_POOL_SIZE", 2, ge=1, le=100)
    # Pre-ping costs a round trip per request. Without it a connection that died (database
    # restart) fails one request with 503, and SQLAlchemy then recycles the whole pool.
    db_pre_ping: bool = _env("BATON_DB_PRE_PING", False)
    # The refresh's two statements as server-side prepared statements (SQL PREPARE, one per
    # connection: planned once). Off behind a pooler in transaction mode (PgBouncer), which
    # runs each transaction on whichever server connection is free.
    db_prepared_statements: bool = _env("BATON_DB_PREPARED_STATEMENTS", True)
    retry_after_s: int = _env("BATON_RETRY_AFTER_S", 1, ge=1, le=3600)
    # How long a worker may use cached tenant settings and signing key (tenancy/lookup.py).
    tenant_cache_s: int = _env("BATON_TENANT_CACHE_S", 5, ge=0, le=300)

    max_content_length: int = _env("BATON_MAX_BODY_BYTES", 16 * 1024, ge=1024, le=1024 * 1024)
    # Public URL of the service: `iss`, the metadata and the JWKS location (SPEC §4.1).
    # Required in production (SPEC §3): nothing a client sends may choose the issuer.
    base_url: str = _env("BATON_BASE_URL", "")
    access_token_audience: str = _env("BATON_AUDIENCE", "baton")
    # X-Forwarded-For/Proto are honoured from this many proxies (0 = none) ...
    trusted_proxies: int = _env("BATON_TRUSTED_PROXIES", 0, ge=0, le=10)
    # ... and X-Forwarded-Host/Port/Prefix only when this says so as well.
    trust_forwarded_host: bool = _env("BATON_TRUST_FORWARDED_HOST", False)

    # argon2id cost (argon2-cffi defaults: RFC 9106 low-memory profile).
    argon2_time_cost: int = _env("BATON_ARGON2_TIME_COST", 3, ge=1, le=100)
    argon2_memory_kib: int = _env("BATON_ARGON2_MEMORY_KIB", 65536, ge=1024, le=4 * 1024 * 1024)
    argon2_parallelism: int = _env("BATON_ARGON2_PARALLELISM", 4, ge=1, le=64)

    # Failed-login allowances per window (SPEC §11; docs/operations.md has the trade-off).
    login_window_s: int = _env("BATON_LOGIN_WINDOW_S", 300, ge=1, le=86_400)
    login_max_per_user_address: int = _env("BATON_LOGIN_MAX_PER_USER_ADDRESS", 5,
                                            ge=1, le=100_000)
    login_max_per_user: int = _env("BATON_LOGIN_MAX_PER_USER", 50, ge=1, le=100_000)
    login_max_per_address: int = _env("BATON_LOGIN_MAX_PER_ADDRESS", 30, ge=1, le=100_000)
    # Wrong second-factor answers (SPEC §13.3): per auth_session (the last one ends it), and
    # per user across auth_sessions within BATON_LOGIN_WINDOW_S (then 429 slow_down).
    mfa_max_answers: int = _env("BATON_MFA_MAX_ANSWERS", 5, ge=1, le=20)
    mfa_max_failures_per_user: int = _env("BATON_MFA_MAX_FAILURES_PER_USER", 10, ge=1,
                                          le=100_000)
    # ... and per user per day, whatever the window says.
    mfa_max_failures_per_day: int = _env("BATON_MFA_MAX_FAILURES_PER_DAY", 30, ge=1,
                                         le=1_000_000)

    # The webhook deliverer (`flask events deliver`; its options override these): one POST
    # is cut off after this long; POSTs to this many endpoints run at once.
    webhook_timeout_s: int = _env("BATON_WEBHOOK_TIMEOUT_S", 15, ge=1, le=120)
    webhook_concurrency: int = _env("BATON_WEBHOOK_CONCURRENCY", 8, ge=1, le=64)

    # Lifetime of tokens printed by `flask users reset-link`.
    reset_token_ttl_s: int = _env("BATON_RESET_TOKEN_TTL_S", 3600, ge=1, le=7 * 86_400)
    # Prometheus metrics at /metrics (SPEC §12); BATON_METRICS=0: no counting, /metrics 404.
    metrics_enabled: bool = _env("BATON_METRICS", True)
    # The admin console at /console/ (SPEC §14); BATON_CONSOLE=0: not served, /console/ 404.
    console_enabled: bool = _env("BATON_CONSOLE", True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_switch_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and cls.model_fields[str(info.field_name)].annotation is int:
            raise ValueError("must be an integer")  # pydantic would read True as 1
        return value

    @field_validator("secret_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("sqlalchemy_database_uri", mode="before")
    @classmethod
    def _psycopg2(cls, url: Any) -> Any:
        return psycopg2_url(url) if isinstance(url, str) else url  # "" is unset too

    @field_validator("secret_key_fallbacks", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.replace(",", " ").split() if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _public_url(cls, url: str) -> str:
        url = url.rstrip("/")
        if url and not _is_public_url(url):
            raise ValueError(f"must be an http(s) URL like https://auth.example.com, got {url!r}")
        return url

    @model_validator(mode="after")
    def _checked(self) -> Settings:
        check_settings(self)  # the checks across settings, at the end of this module
        return self

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings layers the class's defaults, the environment and the overrides itself.
        return (init_settings,)

    @property
    def login_limits(self) -> LoginLimits:
        return LoginLimits(self.login_window_s, self.login_max_per_user_address,
                           self.login_max_per_user, self.login_max_per_address,
                           self.mfa_max_answers, self.mfa_max_failures_per_user,
                           self.mfa_max_failures_per_day)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The current secret first, then the fallbacks, newest first."""
        current = (self.secret_key,) if self.secret_key else ()
        return tuple(s.get_secret_value() for s in current + self.secret_key_fallbacks)

    def flask_config(self) -> dict[str, Any]:
        """The app.config keys other modules read (secrets as plain strings, as Flask wants)."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Secret):
                value = value.get_secret_value()
            elif name == "secret_key_fallbacks":
                value = [s.get_secret_value() for s in value]
            out[name.upper()] = value
        return out


class Config:
    """Flask keys that are no settings. A subclass changes a setting's default by its
    app.config name (ENV_NAME, SECRET_KEY, ...); the environment still wins over it."""

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


class EnvironSource(EnvSettingsSource):
    """The variables the settings name, from os.environ or the mapping a test passes."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # Only a setting's own variable (ENV_NAME has none: BATON_ENV chose the class);
        # an empty value means unset.
        return {name: value for name, value in self.environ.items()
                if value != "" and name in _VARIABLES}

    def prepare_field_value(self, field_name: str, field: FieldInfo, value: Any,
                            value_is_complex: bool) -> Any:
        return value  # plain text: SECRET_KEY_FALLBACKS is a list of words, not JSON


# Each setting's key for pydantic (its variable, or its name if it has none) -> field name.
_FIELD_OF = {str(field.validation_alias or name): name
             for name, field in Settings.model_fields.items()}
_KEY_OF = {name.upper(): key for key, name in _FIELD_OF.items()}  # app.config name -> key
_VARIABLES = {key for key, name in _FIELD_OF.items() if key != name}


def load_settings(config_class: type | None = None, overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults of the environment's class, then the environment, then overrides; checked."""
    environ = os.environ if environ is None else environ
    config_class = config_class or select_config(environ)
    defaults = {key: getattr(config_class, name) for name, key in _KEY_OF.items()
                if hasattr(config_class, name)}
    given = {_KEY_OF[name]: value for name, value in (overrides or {}).items() if name in _KEY_OF}
    try:
        return Settings(**{**defaults, **EnvironSource(environ)(), **given})
    except ValidationError as exc:
        # One line, the variable's name first; never pydantic's report (it quotes values).
        raise ConfigurationError(_one_line(exc.errors()[0])) from None


def _one_line(error: ErrorDetails) -> str:
    if not error["loc"]:
        return str(error["ctx"]["error"])  # a check across settings: the line says it all
    key = str(error["loc"][0])
    name, field = key.upper(), Settings.model_fields[_FIELD_OF[key]]
    kind, given = error["type"], error["input"]
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = (_bound(field, bound) for bound in ("ge", "le"))
        return f"{name} must be between {low} and {high}, got {given}"
    if field.annotation is int:
        return f"{name} must be an integer, got {given!r}"
    if field.annotation is bool:
        return f"{name} must be 0 or 1, got {given!r}"
    if kind == "value_error":
        return f"{name} {error['ctx']['error']}"
    return f"{name} must be text, not {type(given).__name__}"  # never the value: a secret?


def _bound(field: FieldInfo, bound: str) -> Any:
    return next(getattr(limit, bound) for limit in field.metadata if hasattr(limit, bound))


def _is_public_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a port that is no number up to 65535
    except ValueError:  # that, or a bad [IPv6] address
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) \
        and not (parts.query or parts.fragment or parts.username)


# OWASP's floor for argon2id (19 MiB, 2 passes): below it, test-suite costs in production.
MIN_PRODUCTION_ARGON2_MEMORY_KIB = 19 * 1024
MIN_PRODUCTION_ARGON2_TIME_COST = 2


def _check_secret(name: str, secret: str) -> None:
    if len(secret) < MIN_SECRET_LENGTH or secret == INSECURE_DEV_SECRET:
        raise ValueError(
            f"{name} must be a random string of at least {MIN_SECRET_LENGTH} characters "
            "(or set BATON_ENV=development for a local setup)"
        )


def _check_production(settings: Settings) -> None:
    _check_secret("SECRET_KEY", settings.secrets[0])
    if settings.argon2_memory_kib < MIN_PRODUCTION_ARGON2_MEMORY_KIB \
            or settings.argon2_time_cost < MIN_PRODUCTION_ARGON2_TIME_COST:
        raise ValueError(
            f"BATON_ARGON2_MEMORY_KIB must be at least {MIN_PRODUCTION_ARGON2_MEMORY_KIB} and "
            f"BATON_ARGON2_TIME_COST at least {MIN_PRODUCTION_ARGON2_TIME_COST} in production"
        )
    for old in settings.secrets[1:]:
        _check_secret("each of SECRET_KEY_FALLBACKS", old)
    if settings.sqlalchemy_database_uri is None:
        raise ValueError("DATABASE_URL must be set in production (postgresql://user:pass@host/db)")
    if not settings.base_url:
        raise ValueError(
            "BATON_BASE_URL must be set in production (the public URL, e.g. "
            "https://auth.example.com): it is the issuer of every token"
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
        raise ValueError(f"DATABASE_URL must be a URL like {DATABASE_URL_FORM}: it has no scheme")
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(
            f"DATABASE_URL is not a URL like {DATABASE_URL_FORM} (is the port a number, and "
            "are special characters in the password %-encoded?)") from None
    if parsed.drivername not in DATABASE_DRIVERS:
        scheme = url.split("://", 1)[0]
        raise ValueError(f"DATABASE_URL must start with postgresql:// (Baton runs on "
                         f"PostgreSQL through psycopg2), not {scheme}://")
    try:  # the query is libpq's connection options: psycopg2 checks their names
        make_dsn(**{name: "x" for name in parsed.query})
    except ProgrammingError as exc:
        reason = str(exc).strip().removeprefix("invalid dsn: ")
        raise ValueError(f"DATABASE_URL: {reason} (the query string holds libpq "
                         "connection parameters such as sslmode)") from None


def check_settings(settings: Settings) -> None:
    """Refuse an insecure or incomplete configuration (ValueError: load_settings says it)."""
    if settings.secret_key is None:
        raise ValueError(
            f"SECRET_KEY must be set to a random string of at least {MIN_SECRET_LENGTH} "
            "characters (or set BATON_ENV=development for a local setup)"
        )
    if settings.env_name == "production":
        _check_production(settings)
    elif settings.env_name == "development" and settings.sqlalchemy_database_uri is not None \
            and settings.secrets[0] == INSECURE_DEV_SECRET:
        # The public development secret never meets a real database server.
        raise ValueError(
            "SECRET_KEY must be set when BATON_ENV=development uses DATABASE_URL "
            "(the built-in development secret is public)"
        )
    if settings.sqlalchemy_database_uri is not None:
        _check_database_url(settings.sqlalchemy_database_uri.get_secret_value())
    if settings.trust_forwarded_host and settings.trusted_proxies == 0:
        raise ValueError(
            "BATON_TRUST_FORWARDED_HOST needs BATON_TRUSTED_PROXIES (the number of proxies) > 0"
        )
    if settings.argon2_memory_kib < 8 * settings.argon2_parallelism:
        raise ValueError("BATON_ARGON2_MEMORY_KIB must be at least 8 x BATON_ARGON2_PARALLELISM")
    if settings.statement_timeout_ms < settings.lock_timeout_ms:
        raise ValueError(
            "BATON_STATEMENT_TIMEOUT_MS must not be shorter than BATON_LOCK_TIMEOUT_MS"
        )


def engine_options(settings: Mapping[str, Any]) -> dict:
    """psycopg2 connection settings: timeouts inside each transaction, no startup options.

    Nothing here relies on session state, so a transaction pooler (PgBouncer in
    `pool_mode = transaction`) may hand each transaction to another server connection:
    the timeouts are SET LOCAL with the first statement (app/database/timeouts.py), and psycopg2
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
