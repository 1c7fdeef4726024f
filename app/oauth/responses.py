"""Response helpers for the OAuth endpoints."""
from __future__ import annotations

from flask import Response
from flask import jsonify

from app.services.tokens.issuing import IssuedTokens

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def token_response(issued: IssuedTokens) -> Response:
    """RFC 6749 §5.1 success body with the no-store headers (SPEC §4)."""
    response = jsonify({
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
        "refresh_expires_in": issued.refresh_expires_in,
        "session_id": issued.session_id,
    })
    response.headers.update(NO_STORE)
    return response
