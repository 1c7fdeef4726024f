"""Admin views (SPEC §9): parse strictly, call one service, shape the answer.

Every operation is declared with its models (app/admin/models.py); the blueprint's admin key
and tag are declared once, below, as its authentication is (`require_admin_scope`).
"""
from __future__ import annotations

from flask import current_app
from flask import g
from flask import url_for
from flask.typing import ResponseReturnValue

from app.admin import bp
from app.admin.models import AdminCreateUser
from app.admin.models import AdminSession
from app.admin.models import AdminSessionList
from app.admin.models import AdminSetPassword
from app.admin.models import AdminUpdateUser
from app.admin.models import AdminUser
from app.admin.models import AdminUserPage
from app.admin.models import EventPage
from app.admin.models import EventQuery
from app.admin.models import ResetLink
from app.admin.models import ResetLinkRequest
from app.admin.models import UserListQuery
from app.http.answers import NO_CONTENT
from app.http.answers import json_answer
from app.http.answers import no_content
from app.http.answers import ok
from app.http.answers import refused
from app.http.auth import authenticate
from app.http.inputs import JsonFields
from app.http.inputs import Query
from app.http.operations import ADMIN_KEY
from app.http.operations import BlueprintDoc
from app.http.operations import describe_blueprint
from app.http.operations import operation
from app.http.shared import FactorList
from app.http.shared import factor_list
from app.http.web import check_tenant_slug
from app.http.web import utcnow
from app.services.accounts import factors
from app.services.accounts import password_reset
from app.services.accounts import users
from app.services.accounts.users import UserView
from app.services.audit import events
from app.services.tokens import sessions

bp.url_value_preprocessor(check_tenant_slug)
describe_blueprint(bp, BlueprintDoc(tag="admin", security=ADMIN_KEY, operation_prefix="admin"))


@bp.before_request
def require_admin_scope() -> None:
    """Every admin endpoint needs an admin key of this tenant with the `admin` scope."""
    authenticate("admin")


def _actor() -> events.Actor:
    """The admin key this request authenticated with, as the actor of its events."""
    return events.admin_key_actor(g.admin_key.key_id)


def user_answer(user: UserView) -> AdminUser:
    return AdminUser(id=str(user.id), username=user.username, created_at=user.created_at,
                     disabled=user.disabled_at is not None, disabled_at=user.disabled_at,
                     mfa=user.mfa)


USER = ok(AdminUser, "The user.")


@bp.post("/users")
@operation("Create a user (username normalised: NFC, case-folded).",
           body=JsonFields(AdminCreateUser),
           returns=ok(AdminUser, "The user.", status=201,
                      headers={"Location": "The new user's URL."}),
           refusals=(refused(409, "conflict", "The username exists (after normalisation)."),))
def create_user(tenant: str, body: AdminCreateUser) -> ResponseReturnValue:
    user = users.create_user(tenant, body.username, body.password, utcnow(), actor=_actor())
    response = json_answer(user_answer(user), 201)
    response.headers["Location"] = url_for("admin.get_user", tenant=tenant, user_id=user.id)
    return response


@bp.get("/users")
@operation("Users in username order, keyset-paginated (stable under inserts), or the one "
           "user named by `username`.", query=Query(UserListQuery),
           returns=ok(AdminUserPage, "A page of users."))
def list_users(tenant: str, query: UserListQuery) -> ResponseReturnValue:
    """Keyset-paginated users in username order, or the one user named by `?username=`."""
    if query.username is not None:
        found = users.find_user(tenant, query.username)
        return json_answer(AdminUserPage(users=[user_answer(found)] if found else [],
                                         next_cursor=None))
    page, next_cursor = users.list_users(tenant, query.limit, query.cursor or None)
    return json_answer(AdminUserPage(users=[user_answer(u) for u in page],
                                     next_cursor=next_cursor))


@bp.get("/users/<user_id>")
@operation("One user.", returns=USER)
def get_user(tenant: str, user_id: int) -> ResponseReturnValue:
    return json_answer(user_answer(users.get_user(tenant, user_id)))


@bp.patch("/users/<user_id>")
@operation("Disable or enable a user; disabling revokes every session in the same "
           "transaction.", body=JsonFields(AdminUpdateUser), returns=USER)
def update_user(tenant: str, user_id: int, body: AdminUpdateUser) -> ResponseReturnValue:
    """`{"disabled": true|false}`; disabling revokes every session in the same transaction."""
    user, _ = users.set_disabled(tenant, user_id, body.disabled, utcnow(), _actor())
    return json_answer(user_answer(user))


@bp.put("/users/<user_id>/password")
@operation("Set the user's password (tenant policy applies); revokes every session.",
           body=JsonFields(AdminSetPassword), returns=NO_CONTENT)
def set_password(tenant: str, user_id: int, body: AdminSetPassword) -> ResponseReturnValue:
    users.set_password(tenant, user_id, body.password, utcnow(), actor=_actor())
    return no_content()


@bp.post("/users/<user_id>/reset-link")
@operation("A single-use token for `POST …/password/reset` (the application mails it).",
           body=JsonFields(ResetLinkRequest, required=False),
           returns=ok(ResetLink, "The reset token."))
def reset_link(tenant: str, user_id: int, body: ResetLinkRequest) -> ResponseReturnValue:
    """A token for `POST …/password/reset` (the application mails it to the user)."""
    token = password_reset.issue_reset_token(tenant, user_id)
    return json_answer(ResetLink(token=token,
                                 expires_in=current_app.config["RESET_TOKEN_TTL_S"]))


@bp.get("/users/<user_id>/sessions")
@operation("The user's live sessions.", returns=ok(AdminSessionList, "Live sessions."))
def user_sessions(tenant: str, user_id: int) -> ResponseReturnValue:
    found = users.user_sessions(tenant, user_id, utcnow())
    return json_answer(AdminSessionList(
        sessions=[AdminSession.model_validate(s) for s in found]))


@bp.delete("/users/<user_id>/sessions")
@operation("Log the user out everywhere (revokes every session).", returns=NO_CONTENT)
def logout_everywhere(tenant: str, user_id: int) -> ResponseReturnValue:
    users.logout_everywhere(tenant, user_id, utcnow(), actor=_actor())
    return no_content()


@bp.get("/users/<user_id>/factors")
@operation("The user's second factors and recovery codes left (SPEC §13.4); never a secret.",
           returns=ok(FactorList, "The factors."))
def user_factors(tenant: str, user_id: int) -> ResponseReturnValue:
    return json_answer(factor_list(factors.user_factors(tenant, user_id)))


@bp.delete("/users/<user_id>/factors")
@operation("A lost phone: remove every second factor and the recovery codes, and revoke "
           "every session of the user.", returns=NO_CONTENT)
def remove_factors(tenant: str, user_id: int) -> ResponseReturnValue:
    factors.remove_all(tenant, user_id, utcnow(), _actor())
    return no_content()


@bp.delete("/sessions/<session_id>")
@operation("Revoke one session of the tenant.", returns=NO_CONTENT)
def delete_session(tenant: str, session_id: str) -> ResponseReturnValue:
    sessions.admin_delete_session(tenant, session_id, utcnow(), actor=_actor())
    return no_content()


@bp.get("/events")
@operation("Security events after `after`, in commit-safe order (transaction, then id); "
           "never skips one that commits later with a smaller id (SPEC §10).",
           query=Query(EventQuery), returns=ok(EventPage, "A page of events."))
def list_events(tenant: str, query: EventQuery) -> ResponseReturnValue:
    """Security events after `?after=` in id order, commit-order safe (SPEC §10)."""
    page = events.list_events(g.admin_key.tenant_id, query.after, query.limit)
    return json_answer(EventPage.model_validate(page.as_json()))
