"""The application factory: `create_app` loads and checks the settings, then wires the
extensions, blueprints, error handlers and CLI, each in a `register_*` helper."""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from flask import Request
from flask import Response
from flask.sessions import SessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

import config as baton_config
from app.extensions import db
from app.extensions import migrate
from app.metrics import init_metrics
from app.runtime import init_runtime
from app.services.tenancy.lookup import init_tenant_cache

MIGRATIONS_DIR = str(baton_config.BASE_DIR / "migrations")


class NoCookieSessions(SessionInterface):
    """Flask's `session` is never used: no cookie is read or written."""

    def open_session(self, app: Flask, request: Request) -> None:
        return None  # Flask falls back to a NullSession

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        return None


def create_app(config_class: type | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    """Build the application: load and check config, then wire extensions, blueprints, CLI."""
    config_class = config_class or baton_config.select_config()
    # Read, typed and range-checked once; a bad value raises ConfigurationError (one line).
    settings = baton_config.load_settings(config_class, overrides)
    app = Flask(__name__, instance_path=str(baton_config.BASE_DIR / "instance"))
    app.config.from_object(config_class)
    app.config.update(overrides or {})  # keys that are not Settings (TESTING, ...) pass through
    app.config.update(settings.flask_config())
    app.extensions["baton_settings"] = settings
    # An API without cookies: skip Flask's signed-cookie session (it builds a signer per
    # request), so a refresh does not pay for it (docs/performance.md).
    app.session_interface = NoCookieSessions()
    register_logging(app)
    register_database(app)
    warn_development(app)  # after the last configuration check: a config error stays one line
    register_proxy(app)
    register_framing(app)
    init_runtime(app)
    init_tenant_cache(app, settings.tenant_cache_s)
    register_metrics(app)
    register_blueprints(app)
    register_console(app)
    register_errors(app)
    register_cli(app)
    return app


def register_database(app: Flask) -> None:
    if not app.config.get("SQLALCHEMY_DATABASE_URI") and app.config["ALLOW_EMBEDDED_DATABASE"]:
        from app.embedded_db import embedded_database_url

        app.config["SQLALCHEMY_DATABASE_URI"] = embedded_database_url(app.config["EMBEDDED_PGDATA"])
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", baton_config.engine_options(app.config))
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)


def register_logging(app: Flask) -> None:
    from app.logs import configure_logging

    configure_logging(app)


def warn_development(app: Flask) -> None:
    """Never silent: development's defaults (a public secret) are not for production. Said
    once the app is built, so a configuration error stays the only line."""
    if app.config["ENV_NAME"] == "development":
        logging.getLogger("app").warning(
            "BATON_ENV=development: development defaults in use; never run it in production",
            extra={"event": "development_mode"})


def register_proxy(app: Flask) -> None:
    """Trust X-Forwarded-For/Proto only from the configured number of proxies, and
    X-Forwarded-Host/Port/Prefix only when BATON_TRUST_FORWARDED_HOST says so too."""
    hops = app.config["TRUSTED_PROXIES"]
    host_hops = hops if app.config["TRUST_FORWARDED_HOST"] else 0
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=host_hops,  # type: ignore[method-assign]
                                x_port=host_hops, x_prefix=host_hops)


def register_framing(app: Flask) -> None:
    from app.framing import init_framing

    init_framing(app)


def register_metrics(app: Flask) -> None:
    """Counting, and GET /metrics, unless BATON_METRICS=0."""
    if init_metrics(app):
        from app.metrics_endpoint import bp as metrics_bp

        app.register_blueprint(metrics_bp)


def register_blueprints(app: Flask) -> None:
    from app.api import register_api
    from app.openapi import bp as openapi_bp

    register_api(app)
    app.register_blueprint(openapi_bp)


def register_console(app: Flask) -> None:
    """The admin console (SPEC §14): HTML, so not in the API's OpenAPI document."""
    if app.config["CONSOLE_ENABLED"]:
        from app.console import init_console

        init_console(app)


def register_errors(app: Flask) -> None:
    from app.errors import register_error_handlers

    register_error_handlers(app)


def register_cli(app: Flask) -> None:
    from app.cli import register_commands

    register_commands(app)
