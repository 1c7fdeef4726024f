"""Liveness and readiness probes."""
from __future__ import annotations

import logging
from functools import lru_cache

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask import Blueprint
from flask import current_app
from flask import jsonify
from sqlalchemy.exc import SQLAlchemyError

from app.errors import error_response
from app.extensions import db

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@lru_cache(maxsize=4)
def migration_heads(directory: str) -> frozenset[str]:
    """The head revision(s) of the migration scripts shipped with this code."""
    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", directory)
    return frozenset(ScriptDirectory.from_config(alembic_config).get_heads())


@bp.get("/healthz")
def healthz():
    """The process is up; touches nothing else."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when the database answers and its schema is at the migration head."""
    try:
        with db.session.begin():
            rows = db.session.execute(sa.text("SELECT version_num FROM alembic_version"))
            current = frozenset(rows.scalars())
    except SQLAlchemyError as exc:
        log.warning("readyz: database not ready: %s", type(exc).__name__)
        return error_response("temporarily_unavailable", "The database is unavailable.", 503,
                              {"Retry-After": "1"})
    expected = migration_heads(current_app.extensions["migrate"].directory)
    if current != expected:
        return error_response("temporarily_unavailable",
                              "The database schema is not at the migration head.", 503,
                              {"Retry-After": "5"})
    return jsonify({"status": "ready"})
