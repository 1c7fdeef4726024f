"""Tenant-scoped OAuth 2.0 endpoints under /v1/tenants/<tenant>."""
from flask import Blueprint

bp = Blueprint("oauth", __name__, url_prefix="/v1/tenants/<tenant>")
# RFC 8414 §3.1 puts metadata at /.well-known/oauth-authorization-server/<issuer path>.
wellknown_bp = Blueprint("wellknown", __name__)

from app.oauth import routes  # noqa: E402,F401  (registers the views)
from app.oauth import signin_routes  # noqa: E402,F401
