"""Tenant-scoped OAuth 2.0 endpoints under /v1/tenants/<tenant>."""
from flask import Blueprint

bp = Blueprint("oauth", __name__, url_prefix="/v1/tenants/<tenant>")

from app.oauth import routes  # noqa: E402,F401  (registers the views)
