"""Console views of users: search and list, a user's page, and the actions on a user.

Every action calls the admin API's service function (same locks, same events), with the
session's admin key as the actor. A destructive action has a confirmation page (GET) whose
form POSTs; after the POST the browser is sent back to the user's page (303) with a notice.
"""
from __future__ import annotations

from flask import current_app
from flask import g
from flask import redirect
from flask import url_for
from flask.typing import ResponseReturnValue

from app.console import bp
from app.console import forms
from app.console.pages import NOTICES
from app.console.pages import not_found
from app.console.pages import page
from app.http.web import utcnow
from app.services.accounts import factors
from app.services.accounts import password_reset
from app.services.accounts import users
from app.services.errors import InvalidInput
from app.services.tokens import sessions

USERS_PER_PAGE = 50


@bp.get("/users")
def users_page() -> ResponseReturnValue:
    """Find a user by username (normalised as at login), or page through all of them."""
    args = forms.query(("username", "cursor"))
    tenant, username = g.console.tenant_slug, args.get("username", "")
    try:
        if username:
            found = users.find_user(tenant, username)
            return page("users.html", section="users", username=username, searched=True,
                        users=[found] if found else [], next_cursor=None)
        listed, next_cursor = users.list_users(tenant, USERS_PER_PAGE,
                                               args.get("cursor") or None)
    except InvalidInput as refused:
        return page("users.html", 400, section="users", username=username, searched=False,
                    users=[], next_cursor=None, error=refused.message)
    return page("users.html", section="users", username="", searched=False, users=listed,
                next_cursor=next_cursor, paged="cursor" in args)


def _user_page_context(user_id: int) -> dict:
    tenant = g.console.tenant_slug
    return {"user": users.get_user(tenant, user_id),
            "sessions": users.user_sessions(tenant, user_id, utcnow()),
            "factors": factors.user_factors(tenant, user_id)}


@bp.get("/users/<user_id>")
def user_page(user_id: str) -> ResponseReturnValue:
    args = forms.query(("done",))
    context = _user_page_context(forms.user_id(user_id))
    return page("user.html", section="users", notice=NOTICES.get(args.get("done", "")),
                **context)


def _back(user_id: int, done: str) -> ResponseReturnValue:
    return redirect(url_for("console.user_page", user_id=user_id, done=done), 303)


# The destructive actions: (title, what the confirmation page says, button, notice).
ACTIONS = {
    "disable": ("Disable user", "The user can no longer sign in, and every session of theirs "
                "is revoked at once.", "Disable the user", "disabled"),
    "logout": ("Log out everywhere", "Every session of the user is revoked at once: each of "
               "their apps must sign in again.", "Revoke every session", "logged_out"),
    "remove-factors": ("Remove second factors", "Every second factor and the recovery codes of "
                       "the user are removed (a lost phone), and every session is revoked. "
                       "They sign in with the password alone until they enrol a new factor.",
                       "Remove every second factor", "factors_removed"),
}


@bp.get("/users/<user_id>/<any(disable, logout, 'remove-factors'):action>")
def confirm_action(user_id: str, action: str) -> ResponseReturnValue:
    user = users.get_user(g.console.tenant_slug, forms.user_id(user_id))
    title, consequence, button, _ = ACTIONS[action]
    return page("confirm.html", section="users", user=user, title=title,
                consequence=consequence, button=button,
                action=url_for("console.do_action", user_id=user.id, action=action))


@bp.post("/users/<user_id>/<any(disable, logout, 'remove-factors'):action>")
def do_action(user_id: str, action: str) -> ResponseReturnValue:
    who, tenant, actor, now = (forms.user_id(user_id), g.console.tenant_slug,
                               g.console.actor, utcnow())
    if action == "disable":
        users.set_disabled(tenant, who, True, now, actor)
    elif action == "logout":
        users.logout_everywhere(tenant, who, now, actor=actor)
    else:
        factors.remove_all(tenant, who, now, actor)
    return _back(who, ACTIONS[action][3])


@bp.post("/users/<user_id>/enable")
def enable(user_id: str) -> ResponseReturnValue:
    """Not destructive: no confirmation step."""
    who = forms.user_id(user_id)
    users.set_disabled(g.console.tenant_slug, who, False, utcnow(), g.console.actor)
    return _back(who, "enabled")


@bp.get("/users/<user_id>/sessions/<session_id>/revoke")
def confirm_revoke_session(user_id: str, session_id: str) -> ResponseReturnValue:
    context = _user_page_context(forms.user_id(user_id))
    chosen = [s for s in context["sessions"] if s.id == session_id]
    if not chosen:
        raise not_found("The user has no such live session.")
    return page("confirm.html", section="users", user=context["user"], session=chosen[0],
                title="Revoke session", button="Revoke the session",
                consequence="The session is revoked at once: its refresh token stops working "
                            "and its app must sign in again.",
                action=url_for("console.revoke_session", user_id=context["user"].id,
                               session_id=session_id))


@bp.post("/users/<user_id>/sessions/<session_id>/revoke")
def revoke_session(user_id: str, session_id: str) -> ResponseReturnValue:
    """Revoke one session of the user (the admin API's DELETE /sessions/{id})."""
    who, tenant = forms.user_id(user_id), g.console.tenant_slug
    if session_id not in {s.id for s in users.user_sessions(tenant, who, utcnow())}:
        raise not_found("The user has no such live session.")
    sessions.admin_delete_session(tenant, session_id, utcnow(), actor=g.console.actor)
    return _back(who, "session_revoked")


@bp.post("/users/<user_id>/reset-link")
def reset_link(user_id: str) -> ResponseReturnValue:
    """A password reset token for the user, shown once (the page is never cached)."""
    who = forms.user_id(user_id)
    user = users.get_user(g.console.tenant_slug, who)
    token = password_reset.issue_reset_token(g.console.tenant_slug, who)
    return page("reset_link.html", section="users", user=user, token=token,
                expires_in=current_app.config["RESET_TOKEN_TTL_S"])
