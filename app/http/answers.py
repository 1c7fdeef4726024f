"""Answers that must not be cached: tokens, users, sessions (SPEC §4, RFC 6749 §5.1)."""
from __future__ import annotations

from typing import Any

from flask import Response
from flask import jsonify

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def json_answer(body: Any, status: int = 200) -> Response:
    """A JSON answer with the no-store headers."""
    response = jsonify(body)
    response.status_code = status
    response.headers.update(NO_STORE)
    return response


def no_content() -> Response:
    """204 with the no-store headers."""
    return Response(status=204, headers=NO_STORE)
