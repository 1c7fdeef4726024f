"""Admin views (SPEC §9): parse strictly, call one service, shape the answer."""
from __future__ import annotations

import re

from flask import current_app
from flask import g
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from app.admin import bp
from app.errors import NotFound
from app.http.answers import json_answer
from app.http.answers import no_content
from app.http.auth import authenticate
from app.http.web import check_tenant_slug
from app.http.web import utcnow
from app.http.wire import int_arg
from app.http.wire import json_body
from app.http.wire import query_args
from app.services.accounts import password_reset
from app.services.accounts import users
from app.services.accounts.users import UserView
from app.services.audit import events
from app.services.tokens import sessions

_USER_ID = re.compile(r"^[1-9][0-9]{0,17}$")



bp.url_value_preprocessor(check_tenant_slug)


@bp.before_request
def require_admin_scope() -> None:
    """Every admin endpoint needs an admin key of this tenant with the `admin` scope."""
    authenticate("admin")


def _actor() -> events.Actor:
    """The admin key this request authenticated with, as the actor of its events."""
    return events.admin_key_actor(g.admin_key.key_id)


def user_json(user: UserView) -> dict:
    return {
        "id": str(user.id),
        "username": user.username,
        "created_at": user.created_at.isoformat(),
        "disabled": user.disabled_at is not None,
        "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
    }


def _user_id(raw: str) -> int:
    if not _USER_ID.match(raw):
        raise NotFound("No such user.")
    return int(raw)


@bp.post("/users")
def create_user(tenant: str) -> ResponseReturnValue:
    body = json_body(request, {"username": str, "password": str}, ("username", "password"))
    user = users.create_user(tenant, body["username"], body["password"], utcnow(),
                             actor=_actor())
    response = json_answer(user_json(user), 201)
    response.headers["Location"] = url_for("admin.get_user", tenant=tenant, user_id=user.id)
    return response


@bp.get("/users")
def list_users(tenant: str) -> ResponseReturnValue:
    """Keyset-paginated users in username order, or the one user named by `?username=`."""
    args = query_args(request, ("limit", "cursor", "username"))
    limit = int_arg(args, "limit", 50, 1, 200)
    if "username" in args:
        found = users.find_user(tenant, args["username"])
        return json_answer({"users": [user_json(found)] if found else [], "next_cursor": None})
    page, next_cursor = users.list_users(tenant, limit, args.get("cursor") or None)
    return json_answer({"users": [user_json(u) for u in page], "next_cursor": next_cursor})


@bp.get("/users/<user_id>")
def get_user(tenant: str, user_id: str) -> ResponseReturnValue:
    return json_answer(user_json(users.get_user(tenant, _user_id(user_id))))


@bp.patch("/users/<user_id>")
def update_user(tenant: str, user_id: str) -> ResponseReturnValue:
    """`{"disabled": true|false}`; disabling revokes every session in the same transaction."""
    who = _user_id(user_id)
    body = json_body(request, {"disabled": bool}, ("disabled",))
    user, _ = users.set_disabled(tenant, who, body["disabled"], utcnow(), _actor())
    return json_answer(user_json(user))


@bp.put("/users/<user_id>/password")
def set_password(tenant: str, user_id: str) -> ResponseReturnValue:
    who = _user_id(user_id)
    body = json_body(request, {"password": str}, ("password",))
    users.set_password(tenant, who, body["password"], utcnow(), actor=_actor())
    return no_content()


@bp.post("/users/<user_id>/reset-link")
def reset_link(tenant: str, user_id: str) -> ResponseReturnValue:
    """A token for `POST …/password/reset` (the application mails it to the user)."""
    who = _user_id(user_id)
    json_body(request, {})
    token = password_reset.issue_reset_token(tenant, who)
    return json_answer({"token": token, "expires_in": current_app.config["RESET_TOKEN_TTL_S"]})


@bp.get("/users/<user_id>/sessions")
def user_sessions(tenant: str, user_id: str) -> ResponseReturnValue:
    found = users.user_sessions(tenant, _user_id(user_id), utcnow())
    return json_answer({"sessions": [{
        "id": s.id,
        "created_at": s.created_at.isoformat(),
        "last_used_at": s.last_used_at.isoformat(),
        "expires_at": s.expires_at.isoformat(),
        "user_agent": s.user_agent,
    } for s in found]})


@bp.delete("/users/<user_id>/sessions")
def logout_everywhere(tenant: str, user_id: str) -> ResponseReturnValue:
    users.logout_everywhere(tenant, _user_id(user_id), utcnow(), actor=_actor())
    return no_content()


@bp.delete("/sessions/<session_id>")
def delete_session(tenant: str, session_id: str) -> ResponseReturnValue:
    sessions.admin_delete_session(tenant, session_id, utcnow(), actor=_actor())
    return no_content()


@bp.get("/events")
def list_events(tenant: str) -> ResponseReturnValue:
    """Security events after `?after=` in id order, commit-order safe (SPEC §10)."""
    args = query_args(request, ("after", "limit"))
    limit = int_arg(args, "limit", events.DEFAULT_LIMIT, 1, events.MAX_LIMIT)
    after = int_arg(args, "after", 0, 0, 2**63 - 1) if "after" in args else None
    return json_answer(events.list_events(g.admin_key.tenant_id, after, limit).as_json())
