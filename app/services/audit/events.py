"""Security events (SPEC §10): a transactional outbox, read commit-order safely.

`record_event` adds the event's INSERT to the caller's transaction, so the event exists if
and only if the change it describes committed. Events carry ids, reasons and the client
address; never a token, password or key.

Event ids come from a sequence, so they are not commit order: a transaction can take id 10,
stay open, and commit after id 11 did. Each row therefore records the 64-bit id of the
transaction that wrote it (`xact_id`), and a reader lists only rows written by transactions
older than every transaction still running (`pg_snapshot_xmin`). Whatever is still in flight
is held back until it has committed, so paging with `after` never skips an event.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from typing import Iterable

import sqlalchemy as sa

from app.extensions import db
from app.services.errors import InvalidInput
from app.services.unit_of_work import transaction

SESSION_STARTED = "session.started"
SESSION_REVOKED = "session.revoked"
REFRESH_TOKEN_REPLAYED = "refresh_token.replayed"
USER_CREATED = "user.created"
USER_DISABLED = "user.disabled"
USER_ENABLED = "user.enabled"
USER_PASSWORD_CHANGED = "user.password_changed"
LOGIN_THROTTLED = "login.throttled"
SIGNING_KEY_ROTATED = "signing_key.rotated"
ADMIN_KEY_CREATED = "admin_key.created"
ADMIN_KEY_REVOKED = "admin_key.revoked"
# Second factors (SPEC §13.4).
MFA_ENROLLED = "mfa.enrolled"
MFA_REMOVED = "mfa.removed"
MFA_RECOVERY_CODES_REGENERATED = "mfa.recovery_codes_regenerated"
MFA_RECOVERY_CODE_USED = "mfa.recovery_code_used"
MFA_FAILED = "mfa.failed"  # an auth_session ended by wrong answers
MFA_PASSKEY_CLONE_SUSPECTED = "mfa.passkey_clone_suspected"
KINDS = (SESSION_STARTED, SESSION_REVOKED, REFRESH_TOKEN_REPLAYED, USER_CREATED, USER_DISABLED,
         USER_ENABLED, USER_PASSWORD_CHANGED, LOGIN_THROTTLED, SIGNING_KEY_ROTATED,
         ADMIN_KEY_CREATED, ADMIN_KEY_REVOKED, MFA_ENROLLED, MFA_REMOVED,
         MFA_RECOVERY_CODES_REGENERATED, MFA_RECOVERY_CODE_USED, MFA_FAILED,
         MFA_PASSKEY_CLONE_SUSPECTED)

# session.revoked reasons; the same words are stored in sessions.revoke_reason.
REVOKE_REASONS = ("logout", "replay", "admin", "password_change", "user_disabled",
                  "session_delete", "code_replay")

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Actor:
    """Who made the change: `{"type": "user"|"admin_key"|"cli"|"system", "id"}`."""

    type: str
    id: str | None = None


CLI = Actor("cli")
SYSTEM = Actor("system")


def user_actor(user_id: int) -> Actor:
    return Actor("user", str(user_id))


def admin_key_actor(key_id: int | str) -> Actor:
    return Actor("admin_key", str(key_id))


@dataclass(frozen=True)
class NewEvent:
    kind: str
    tenant_id: int
    actor: Actor
    data: dict[str, Any]
    dedupe_key: str | None = None


# One statement for any number of events. The transaction id is taken in a materialized CTE,
# before the identity default draws the event id, so an event's id is never older than its
# transaction. An event is owed a delivery iff its tenant has a webhook when it is written.
# ON CONFLICT: a dedupe key (login.throttled per key and window) already recorded is skipped.
_INSERT = sa.text(
    """
    WITH x AS MATERIALIZED (SELECT pg_current_xact_id()::text::bigint AS xact_id)
    INSERT INTO events (tenant_id, xact_id, type, occurred_at, actor_type, actor_id, data,
                        dedupe_key, delivery, next_attempt_at)
    SELECT e.tenant_id, x.xact_id, e.type, :now, e.actor_type, e.actor_id, e.data, e.dedupe_key,
           CASE WHEN w.tenant_id IS NULL THEN 'none' ELSE 'pending' END,
           CASE WHEN w.tenant_id IS NULL THEN NULL ELSE CAST(:now AS timestamptz) END
    FROM x CROSS JOIN jsonb_to_recordset(CAST(:rows AS jsonb)) AS e(
        tenant_id bigint, type text, actor_type text, actor_id text, data jsonb, dedupe_key text)
    LEFT JOIN webhooks w ON w.tenant_id = e.tenant_id
    ON CONFLICT DO NOTHING
    """
)


def _row(event: NewEvent) -> dict[str, Any]:
    if event.kind not in KINDS:
        raise ValueError(f"unknown event kind {event.kind!r}")
    return {"tenant_id": event.tenant_id, "type": event.kind, "actor_type": event.actor.type,
            "actor_id": event.actor.id, "data": event.data, "dedupe_key": event.dedupe_key}


def record_events(events: Iterable[NewEvent], now: datetime) -> int:
    """Insert events inside the caller's transaction (one statement); returns how many."""
    rows = [_row(e) for e in events]
    if not rows:
        return 0
    return db.session.connection().execute(
        _INSERT, {"now": now, "rows": json.dumps(rows, default=str)}).rowcount


def record_event(kind: str, tenant_id: int, actor: Actor, data: dict[str, Any],
                 now: datetime, *, dedupe_key: str | None = None) -> bool:
    """Insert one event inside the caller's transaction; False if its dedupe key was taken."""
    return record_events([NewEvent(kind, tenant_id, actor, data, dedupe_key)], now) == 1


def session_revoked(tenant_id: int, session_ids: Iterable, reason: str, actor: Actor,
                    now: datetime, **data: Any) -> list[NewEvent]:
    """session.revoked events, one per session (not yet recorded)."""
    if reason not in REVOKE_REASONS:
        raise ValueError(f"unknown revoke reason {reason!r}")
    return [NewEvent(SESSION_REVOKED, tenant_id, actor,
                     {"session_id": str(sid), "reason": reason, **data})
            for sid in session_ids]


def record_login_throttled(tenant_id: int | None, limits: Iterable[tuple[str, str, datetime]],
                           client_address: str | None, user_id: int | None,
                           now: datetime) -> int:
    """login.throttled, once per throttle key and window, in a transaction of its own.

    The throttled attempt itself rolls back (its count is not kept), so the event is the
    only write. `limits` holds (kind, key, window_start) of each limit exceeded. Without
    a tenant (a console sign-in naming none) there is no feed to write to: nothing.
    """
    if tenant_id is None:
        return 0
    events = []
    for kind, key, window_start in limits:
        # The key (a username or an address) is hashed: the dedupe key only has to be unique.
        digest = hashlib.sha256(f"{kind}\0{key}".encode()).hexdigest()[:32]
        dedupe = f"{LOGIN_THROTTLED}:{digest}:{window_start.isoformat()}"
        events.append(NewEvent(LOGIN_THROTTLED, tenant_id, SYSTEM, {
            "limit": kind, "user_id": None if user_id is None else str(user_id),
            "client_address": client_address}, dedupe))
    with transaction():
        return record_events(events, now)


# Pages run in (transaction id, event id) order, not event id order: a transaction can take
# its transaction id (its first write) before another, draw its event id after it and commit
# later. Everything listed is older than every running transaction (`xact_id < xmin`), and
# whatever commits later has `xact_id >= xmin`, so it always sorts after the cursor: paging
# never skips it. `after` is still an event id; its row gives the cursor's transaction id.
# An `after` naming no event of the tenant (say, purged) starts again from the oldest kept:
# events may then repeat (receivers dedupe by id), never go missing.
# A type filter only drops rows from the same walk: the cursor is still the last event
# returned (its row gives the transaction id), so the rule above holds for a filtered page.
_LIST = sa.text(
    """
    SELECT e.id, e.type, e.occurred_at, t.slug, e.actor_type, e.actor_id, e.data
    FROM events e JOIN tenants t ON t.id = e.tenant_id
    WHERE e.tenant_id = :tenant_id
      AND (e.xact_id, e.id) > (COALESCE((SELECT c.xact_id FROM events c
                                         WHERE c.id = :after AND c.tenant_id = :tenant_id),
                                        -1), :after)
      AND e.xact_id < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
      AND (CAST(:type AS text) IS NULL OR e.type = CAST(:type AS text))
    ORDER BY e.xact_id, e.id
    LIMIT :limit
    """
)


def event_body(row: Any) -> dict[str, Any]:
    """The SPEC §10 shape of an event row (the admin API and the webhook body)."""
    return {
        "id": str(row.id),
        "type": row.type,
        "occurred_at": row.occurred_at.isoformat(),
        "tenant": row.slug,
        "actor": {"type": row.actor_type, "id": row.actor_id},
        "data": row.data,
    }


@dataclass(frozen=True)
class EventPage:
    events: list[dict[str, Any]]
    next_after: str | None

    def as_json(self) -> dict[str, Any]:
        return {"events": self.events, "next_after": self.next_after}


def list_events(tenant_id: int, after: int | None = None,
                limit: int = DEFAULT_LIMIT, *, kind: str | None = None) -> EventPage:
    """Events of the tenant after `after` in commit-safe order (transaction, then id),
    never skipping one that commits later; only those of type `kind` when it is given.

    `next_after` is the last id returned, or `after` when the page is empty (SPEC §10).
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_LIMIT}")
    if after is not None and after < 0:
        raise InvalidInput("after must be an event id")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"type must be one of {', '.join(KINDS)}")
    with transaction():
        rows = db.session.execute(_LIST, {"tenant_id": tenant_id, "after": after or 0,
                                          "limit": limit, "type": kind}).all()
    events = [event_body(row) for row in rows]
    next_after = events[-1]["id"] if events else (None if after is None else str(after))
    return EventPage(events, next_after)
