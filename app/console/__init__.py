"""The admin console (SPEC §14) at /console/: server-rendered pages for a tenant's operators.

Jinja templates (templates/console/), one static stylesheet (static/), no script at all, so
every page works without JavaScript and the Content-Security-Policy forbids scripts outright.
An operator signs in with an admin key of scope `admin`, exchanged once for a server-side
console session (app.services.signin.console_sessions); auth.py checks that session, the
form token of every POST and the response headers in one place for every view. Views parse,
call the same service functions as the admin API (app/admin) and render: no SQL here.
"""
from __future__ import annotations

from flask import Blueprint
from flask import Flask

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")


def init_console(app: Flask) -> None:
    """Serve the console (BATON_CONSOLE=1, the default)."""
    from app.console import auth  # noqa: F401  (the session check and headers)
    from app.console import pages  # noqa: F401  (error pages, filters)
    from app.console import routes  # noqa: F401  (the views)
    from app.console import users  # noqa: F401

    app.register_blueprint(bp)
