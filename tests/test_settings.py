"""Typed settings: read once, every range checked, one clear line for a bad value."""
from __future__ import annotations

import subprocess
import sys

import pytest

import config
from tests.helpers import PROJECT_ROOT

PRODUCTION = {"SECRET_KEY": "s" * 40, "DATABASE_URL": "postgresql://u@db/baton",
              "BATON_BASE_URL": "https://auth.example.com"}


def load(env_name: str = "production", **environ: str) -> config.Settings:
    base = PRODUCTION if env_name == "production" else {}
    return config.load_settings(config.CONFIGS[env_name], environ={**base, **environ})


def test_defaults_are_typed():
    settings = load()
    assert settings.lock_timeout_ms == 2000 and settings.db_pre_ping is False
    assert settings.login_limits == config.LoginLimits(
        window_s=300, per_user_address=5, per_user=50, per_address=30)
    assert settings.base_url == "https://auth.example.com"
    assert settings.sqlalchemy_database_uri.get_secret_value() == "postgresql+psycopg2://u@db/baton"
    assert (settings.webhook_timeout_s, settings.webhook_concurrency) == (15, 8)


def test_environment_wins_over_defaults_and_overrides_over_both():
    settings = config.load_settings(config.ProductionConfig, {"LOCK_TIMEOUT_MS": 700},
                                    environ={**PRODUCTION, "BATON_LOCK_TIMEOUT_MS": "500",
                                             "BATON_LOGIN_MAX_PER_USER": "20",
                                             "BATON_DB_PRE_PING": "1"})
    assert settings.lock_timeout_ms == 700
    assert settings.login_limits.per_user == 20 and settings.db_pre_ping is True


def test_secrets_never_show_in_repr():
    settings = load(SECRET_KEY_FALLBACKS="f" * 40,
                    DATABASE_URL="postgresql://baton:hunter2-db-pass@db/baton")
    text = repr(settings)
    assert "s" * 40 not in text and "f" * 40 not in text and "hunter2" not in text
    assert "SecretStr('**********')" in text


@pytest.mark.parametrize("name, value, words", [
    ("BATON_LOGIN_WINDOW_S", "0", "between 1 and"),  # 0 silently disabled throttling
    ("BATON_LOCK_TIMEOUT_MS", "0", "between 1 and"),  # 0 is "no lock timeout" to PostgreSQL
    ("BATON_LOGIN_MAX_PER_USER", "-1", "between 1 and"),  # negative throttled everyone
    ("BATON_LOGIN_MAX_PER_USER_ADDRESS", "0", "between 1 and"),
    ("BATON_LOGIN_MAX_PER_ADDRESS", "-5", "between 1 and"),
    ("BATON_DB_POOL_SIZE", "0", "between 1 and"),
    ("BATON_MAX_BODY_BYTES", "10", "between 1024 and"),
    ("BATON_TRUSTED_PROXIES", "-1", "between 0 and"),
    ("BATON_STATEMENT_TIMEOUT_MS", "1000", "not be shorter than BATON_LOCK_TIMEOUT_MS"),
    ("BATON_ARGON2_TIME_COST", "0", "between 1 and"),
    ("BATON_ARGON2_MEMORY_KIB", "1024", "in production"),  # the test suite's cost
    ("BATON_ARGON2_TIME_COST", "1", "in production"),
    ("BATON_RESET_TOKEN_TTL_S", "0", "between 1 and"),
    ("BATON_WEBHOOK_TIMEOUT_S", "0", "between 1 and"),  # 0: every POST cut off at once
    ("BATON_WEBHOOK_CONCURRENCY", "0", "between 1 and"),  # 0: nothing would be sent
    ("BATON_DB_PRE_PING", "maybe", "0 or 1"),
    ("BATON_TENANT_CACHE_S", "ten", "must be an integer"),
    ("BATON_TRUST_FORWARDED_HOST", "1", "BATON_TRUSTED_PROXIES"),
    ("BATON_BASE_URL", "auth.example.com", "http(s) URL"),
    ("SECRET_KEY_FALLBACKS", "short", "SECRET_KEY_FALLBACKS"),
])
def test_out_of_range_setting_is_one_clear_line(name, value, words):
    with pytest.raises(config.ConfigurationError) as caught:
        load(**{name: value})
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert name in message or name == "BATON_STATEMENT_TIMEOUT_MS"


@pytest.mark.parametrize("name, value, line", [
    ("BATON_LOCK_TIMEOUT_MS", "0", "BATON_LOCK_TIMEOUT_MS must be between 1 and 60000, got 0"),
    ("BATON_DB_POOL_SIZE", "101", "BATON_DB_POOL_SIZE must be between 1 and 100, got 101"),
    ("BATON_TENANT_CACHE_S", "5s", "BATON_TENANT_CACHE_S must be an integer, got '5s'"),
    ("BATON_METRICS", "enabled", "BATON_METRICS must be 0 or 1, got 'enabled'"),
    ("BATON_BASE_URL", "ftp://auth.example.com", "BATON_BASE_URL must be an http(s) URL like "
     "https://auth.example.com, got 'ftp://auth.example.com'"),
    # urlsplit's own ValueError once escaped as a traceback instead of this line.
    ("BATON_BASE_URL", "https://[::1", "BATON_BASE_URL must be an http(s) URL like "
     "https://auth.example.com, got 'https://[::1'"),
    ("BATON_BASE_URL", "https://auth.example.com:99999", "BATON_BASE_URL must be an http(s) "
     "URL like https://auth.example.com, got 'https://auth.example.com:99999'"),
])
def test_bad_value_is_translated_into_one_line(name, value, line):
    """pydantic's report (several lines, the value quoted) never reaches the operator."""
    with pytest.raises(config.ConfigurationError) as caught:
        load(**{name: value})
    assert str(caught.value) == line
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("key, value, line", [
    ("LOCK_TIMEOUT_MS", "soon", "BATON_LOCK_TIMEOUT_MS must be an integer, got 'soon'"),
    ("LOCK_TIMEOUT_MS", None, "BATON_LOCK_TIMEOUT_MS must be an integer, got None"),
    ("LOCK_TIMEOUT_MS", True, "BATON_LOCK_TIMEOUT_MS must be an integer, got True"),
    ("DB_PRE_PING", "sometimes", "BATON_DB_PRE_PING must be 0 or 1, got 'sometimes'"),
    ("BASE_URL", 8000, "BATON_BASE_URL must be text, not int"),
    ("SECRET_KEY", 12345678901234567890123456789012345,
     "SECRET_KEY must be text, not int"),  # the value of a secret is never repeated
])
def test_wrong_type_in_an_override_is_one_line(key, value, line):
    with pytest.raises(config.ConfigurationError) as caught:
        config.load_settings(config.TestConfig, {key: value}, environ={})
    assert str(caught.value) == line


def test_a_short_fallback_is_refused_without_showing_it():
    with pytest.raises(config.ConfigurationError) as caught:
        load(SECRET_KEY_FALLBACKS=f"{'f' * 40}, hunter2-short-secret")
    assert str(caught.value).startswith("each of SECRET_KEY_FALLBACKS must be a random string")
    assert "hunter2" not in str(caught.value)


def test_layers_class_defaults_then_environment_then_overrides():
    settings = config.load_settings(config.TestConfig, {"ARGON2_PARALLELISM": 2}, environ={
        "BATON_ARGON2_TIME_COST": "2", "BATON_ARGON2_PARALLELISM": "3",
        "BATON_LOCK_TIMEOUT_MS": "",  # empty: unset, the default stays
        # Only a setting's own variable is read: these name none.
        "BATON_ENV": "production", "ENV_NAME": "production", "env_name": "production",
        "ALLOW_EMBEDDED_DATABASE": "0", "allow_embedded_database": "0"})
    assert settings.argon2_memory_kib == 1024  # TestConfig
    assert settings.argon2_time_cost == 2  # the environment over TestConfig
    assert settings.argon2_parallelism == 2  # the override over both
    assert settings.lock_timeout_ms == 2000
    assert settings.env_name == "test" and settings.allow_embedded_database is True


def test_settings_are_frozen():
    settings = load()
    with pytest.raises(ValueError):
        settings.lock_timeout_ms = 0


def test_production_requires_the_public_base_url():
    with pytest.raises(config.ConfigurationError, match="BATON_BASE_URL must be set"):
        load(BATON_BASE_URL="")


def test_development_secret_never_meets_a_database_server():
    assert load("development").secret_key.get_secret_value() == config.INSECURE_DEV_SECRET
    with pytest.raises(config.ConfigurationError, match="SECRET_KEY must be set"):
        load("development", DATABASE_URL="postgresql://u@db/baton")
    assert load("development", DATABASE_URL="postgresql://u@db/baton",
                SECRET_KEY="d" * 40).secret_key.get_secret_value() == "d" * 40


def test_development_warning_is_said_once(database_url, caplog):
    """Every CLI command and worker builds the app once: one warning line each, not two."""
    from app import create_app

    with caplog.at_level("WARNING", logger="app"):
        create_app(config.DevelopmentConfig, {"SQLALCHEMY_DATABASE_URI": database_url,
                                              "SECRET_KEY": "d" * 40})
    said = [r for r in caplog.records if getattr(r, "event", None) == "development_mode"]
    assert len(said) == 1


def test_overrides_are_checked_too():
    with pytest.raises(config.ConfigurationError, match="LOGIN_WINDOW_S"):
        config.load_settings(config.TestConfig, {"LOGIN_WINDOW_S": 0}, environ={})


def test_app_config_keeps_its_key_names(app):
    for key in ("LOCK_TIMEOUT_MS", "STATEMENT_TIMEOUT_MS", "BASE_URL", "SECRET_KEY",
                "SECRET_KEY_FALLBACKS", "LOGIN_MAX_PER_USER", "LOGIN_MAX_PER_USER_ADDRESS",
                "LOGIN_MAX_PER_ADDRESS", "TRUST_FORWARDED_HOST", "MAX_CONTENT_LENGTH"):
        assert key in app.config
    assert isinstance(app.config["SECRET_KEY"], str)
    # The timeouts travel as SET LOCAL with each transaction's first statement (pgtimeouts).
    cursor = config.engine_options(app.config)["connect_args"]["cursor_factory"]
    assert "options" not in config.engine_options(app.config)["connect_args"]
    assert cursor is not None
    assert isinstance(app.extensions["baton"].login_limits, config.LoginLimits)


@pytest.mark.parametrize("extra, words", [
    ({"BATON_LOGIN_WINDOW_S": "0"}, "BATON_LOGIN_WINDOW_S"),
    ({"BATON_BASE_URL": ""}, "BATON_BASE_URL"),
    ({"BATON_BASE_URL": "https://[::1"}, "BATON_BASE_URL"),  # was a traceback
    ({"BATON_DB_PRE_PING": "maybe"}, "BATON_DB_PRE_PING must be 0 or 1"),
])
def test_gunicorn_entry_point_exits_3_with_one_line(extra, words):
    env = {"PATH": "/usr/bin:/bin", "BATON_ENV": "production", **PRODUCTION, **extra}
    result = subprocess.run([sys.executable, "-c", "import wsgi"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
