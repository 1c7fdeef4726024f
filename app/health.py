"""Liveness and readiness probes."""
from __future__ import annotations

import logging
from functools import lru_cache

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from flask import Blueprint
from flask import current_app
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from app.errors import error_response
from app.extensions import db
from app.http.answers import json_answer
from app.http.answers import ok
from app.http.answers import refused
from app.http.models import AnswerModel
from app.http.operations import operation
from app.services.tenancy.signing_keys import secrets_ready

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


class Status(AnswerModel):
    """The probe's verdict."""

    status: str


@lru_cache(maxsize=4)
def migration_heads(directory: str) -> frozenset[str]:
    """The head revision(s) of the migration scripts shipped with this code."""
    alembic_config = AlembicConfig()
    alembic_config.set_main_option("script_location", directory)
    return frozenset(ScriptDirectory.from_config(alembic_config).get_heads())


@bp.get("/healthz")
@operation("Liveness: the process is up.", tag="operations", returns=ok(Status, "Up."))
def healthz() -> ResponseReturnValue:
    """The process is up; touches nothing else."""
    return json_answer(Status(status="ok"), headers={})


@bp.get("/readyz")
@operation("Readiness: the database answers and the schema is at the migration head.",
           tag="operations", returns=ok(Status, "Ready."), refusals=(refused(
               503, "temporarily_unavailable", "The database is unreachable, its schema is not "
               "at the migration head, or this node's secrets cannot decrypt the signing keys.",
               {"Retry-After": "Seconds to wait before retrying."}),))
def readyz() -> ResponseReturnValue:
    """Ready when the database answers, its schema is at the migration head and this node's
    secrets decrypt the signing keys (SPEC §11; keys.secrets_ready says how)."""
    try:
        with db.session.begin():
            rows = db.session.execute(sa.text("SELECT version_num FROM alembic_version"))
            current = frozenset(rows.scalars())
            expected = migration_heads(current_app.extensions["migrate"].directory)
            keys_ok = current != expected or secrets_ready()
    except SQLAlchemyError as exc:
        log.warning("readyz: database not ready: %s", type(exc).__name__)
        return error_response("temporarily_unavailable", "The database is unavailable.", 503,
                              {"Retry-After": "1"})
    if current != expected:
        return error_response("temporarily_unavailable",
                              "The database schema is not at the migration head.", 503,
                              {"Retry-After": "5"})
    if not keys_ok:
        return error_response("temporarily_unavailable",
                              "This node's secrets cannot decrypt the signing keys.", 503,
                              {"Retry-After": "5"})
    return json_answer(Status(status="ready"), headers={})
