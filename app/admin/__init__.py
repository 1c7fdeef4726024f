"""Tenant admin API (SPEC §9) under /v1/tenants/<tenant>/admin, for the application's backend.

Every request is authenticated with an admin key in one `before_request` (auth.py), so no
view can be left open by omission. Never CORS: browsers have no business holding admin keys.
"""
from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/v1/tenants/<tenant>/admin")

from app.admin import routes  # noqa: E402,F401  (registers the views)
