"""Response helpers for the OAuth and admin endpoints: the JSON shapes both show."""
from __future__ import annotations

from flask import Response
from flask import jsonify

from app.services.accounts import factors
from app.services.tokens.issuing import IssuedTokens
from app.services.tokens.sessions import SessionInfo

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


def session_json(session: SessionInfo) -> dict:
    """A session as the sessions lists show it (SPEC §4.2, §9, §13.4)."""
    return {
        "id": session.id,
        "created_at": session.created_at.isoformat(),
        "last_used_at": session.last_used_at.isoformat(),
        "expires_at": session.expires_at.isoformat(),
        "user_agent": session.user_agent,
        "amr": list(session.amr),
        "auth_time": session.auth_time.isoformat() if session.auth_time else None,
        "client_id": session.client_id,
    }


def factor_json(factor: factors.FactorView) -> dict:
    return {"id": str(factor.id), "type": factor.type, "name": factor.name,
            "created_at": factor.created_at.isoformat(),
            "last_used_at": factor.last_used_at.isoformat() if factor.last_used_at else None}


def factors_json(listing: factors.FactorList) -> dict:
    return {"factors": [factor_json(f) for f in listing.factors],
            "recovery_codes_left": listing.recovery_codes_left}
