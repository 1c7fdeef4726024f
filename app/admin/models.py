"""Request and answer models of the tenant admin API (SPEC §9) and its event feed (§10).

Bodies are JSON objects of known, typed fields; every refusal starts with the field name.
"""
from __future__ import annotations

import re
from typing import Annotated
from typing import Any
from typing import Literal

from pydantic import ConfigDict
from pydantic import Field

from app.errors import NotFound
from app.http.answers import refused
from app.http.models import Absent
from app.http.models import AnswerModel
from app.http.models import Fields
from app.http.models import IntegerFrom
from app.http.models import Param
from app.http.models import QueryFields
from app.http.models import QueryText
from app.http.models import Timestamp
from app.http.models import described
from app.http.models import example
from app.http.operations import PathParameter
from app.http.operations import path_parameter
from app.http.shared import SessionFields
from app.models.tenant import MAX_PASSWORD_LENGTH
from app.models.user import MAX_USERNAME_LENGTH
from app.services.audit import events

USER_ID_PATTERN = r"^[1-9][0-9]{0,17}$"
_USER_ID = re.compile(USER_ID_PATTERN)
SESSION_ID = "0b6f3c9e-8a7d-4f43-9d0e-2f1c5a7b9e11"


def user_id(raw: str) -> int:
    """A user id of the path; anything else names no user (404)."""
    if not _USER_ID.match(raw):
        raise NotFound("No such user.")
    return int(raw)


USER_ID = path_parameter(PathParameter(
    "user_id", "A user id of this tenant (another tenant's id is 404).",
    {"type": "string", "pattern": USER_ID_PATTERN}, "42",
    (refused(404, "not_found", "Unknown tenant, or no such user in this tenant."),), user_id))

# The service's rules (SPEC §11), worded by the service with the field name first.
Username = Annotated[Param, described(minLength=1, maxLength=MAX_USERNAME_LENGTH)]
Password = Annotated[Param, described(minLength=1, maxLength=MAX_PASSWORD_LENGTH,
                                      format="password")]


class AdminCreateUser(Fields):
    """A new user of the tenant."""

    model_config = ConfigDict(json_schema_extra=example(
        {"username": "alice", "password": "correct horse"}))

    username: Username = Field(
        description="Unicode; NFC and case-folded; no surrounding spaces.")
    password: Password = Field(description="Subject to the tenant's password policy.")


class AdminUpdateUser(Fields):
    """Disable (revoking every session) or enable the user."""

    model_config = ConfigDict(json_schema_extra=example({"disabled": True}))

    disabled: bool


class AdminSetPassword(Fields):
    """The user's new password."""

    model_config = ConfigDict(json_schema_extra=example({"password": "a new passphrase"}))

    password: Password = Field(description="Subject to the tenant's password policy.")


class ResetLinkRequest(Fields):
    """No fields: an empty object, or no body at all."""

    model_config = ConfigDict(json_schema_extra=example({}))


class UserListQuery(QueryFields):
    """A page of users, or the one user named by `username`."""

    limit: Annotated[int, IntegerFrom(1, 200)] = Field(50, description="Page size.",
                                                      examples=[50])
    cursor: QueryText | Absent = Field(None, description="`next_cursor` of the previous page.",
                                       examples=["YWxpY2U"])
    username: QueryText | Absent = Field(None, description="Find one user, normalised as at "
                                                           "login.", examples=["Alice"])


class EventQuery(QueryFields):
    """A page of events after `after`."""

    after: Annotated[int, IntegerFrom(0, 2**63 - 1)] | Absent = Field(
        None, description="`next_after` of the previous page (an event id).", examples=[1042])
    limit: Annotated[int, IntegerFrom(1, events.MAX_LIMIT)] = Field(
        events.DEFAULT_LIMIT, description="Page size.", examples=[50])


USER_EXAMPLE = {"id": "42", "username": "alice", "created_at": "2026-01-05T09:30:00+00:00",
                "disabled": False, "disabled_at": None, "mfa": False}


class AdminUser(AnswerModel):
    """SPEC §9 user object."""

    model_config = ConfigDict(json_schema_extra=example(USER_EXAMPLE))

    id: str = Field(description="User id.")
    username: str = Field(description="Normalised username.")
    created_at: Timestamp
    disabled: bool
    disabled_at: Timestamp | None
    mfa: bool = Field(description="Has a second factor (SPEC §13.4).")


class AdminUserPage(AnswerModel):
    """Users in username order, keyset-paginated."""

    model_config = ConfigDict(json_schema_extra=example(
        {"users": [USER_EXAMPLE], "next_cursor": "YWxpY2U"}))

    users: list[AdminUser]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end.")


class ResetLink(AnswerModel):
    """A token for `POST …/password/reset` (the application mails it to the user)."""

    model_config = ConfigDict(json_schema_extra=example(
        {"token": "eyJ1IjoiNDIi...", "expires_in": 3600}))

    token: str = Field(description="Signed, time-limited, single-use.")
    expires_in: int = Field(description="Seconds the token is valid.")


class AdminSession(SessionFields):
    """A live session of the user (SPEC §4.2 fields, without `current`)."""


class AdminSessionList(AnswerModel):
    """The user's live sessions, newest first."""

    sessions: list[AdminSession]


class EventActor(AnswerModel):
    """Who made the change."""

    type: Literal["user", "admin_key", "cli", "system"]
    id: str | None


EVENT_EXAMPLE = {"id": "1043", "type": "session.revoked",
                 "occurred_at": "2026-01-05T09:30:00+00:00", "tenant": "acme",
                 "actor": {"type": "admin_key", "id": "3"},
                 "data": {"session_id": SESSION_ID, "reason": "admin", "user_id": "42"}}


class Event(AnswerModel):
    """A security event (SPEC §10); the webhook body has the same shape."""

    model_config = ConfigDict(json_schema_extra=example(EVENT_EXAMPLE))

    id: str = Field(description="Event id; also the webhook's `webhook-id`.")
    type: Annotated[str, described(enum=list(events.KINDS))]
    occurred_at: Annotated[str, described(format="date-time")]
    tenant: str = Field(description="Tenant slug.")
    actor: EventActor
    data: dict[str, Any] = Field(
        description="Ids, the revoke `reason` (one of " + ", ".join(events.REVOKE_REASONS)
                    + "), the client address where known; never a token, password or key.")


class EventPage(AnswerModel):
    """Events in commit-safe order (SPEC §10)."""

    model_config = ConfigDict(json_schema_extra=example(
        {"events": [EVENT_EXAMPLE], "next_after": "1043"}))

    events: list[Event]
    next_after: str | None = Field(description="The last id returned, or `after` when the "
                                               "page is empty (null if neither).")
