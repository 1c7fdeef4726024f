"""The JSON API's blueprints: what the OpenAPI document describes (with itself and
/metrics, which the factory registers on their own)."""
from __future__ import annotations

from flask import Flask


def register_api(app: Flask) -> None:
    from app.admin import bp as admin_bp
    from app.health import bp as health_bp
    from app.oauth import bp as oauth_bp
    from app.oauth import wellknown_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(oauth_bp)
    app.register_blueprint(wellknown_bp)
    app.register_blueprint(admin_bp)
