"""Second factors (SPEC §13.1, §13.2, §13.4): enrolment, confirmation, listing, removal,
recovery codes, and the TOTP check the sign-in flow uses.

Who may change factors: the user, with an access token of a live session whose sign-in is
recent (RFC 9470 step-up: `auth_time` within the tenant's step_up_max_age), or an admin key
(removing them all). Every change locks the user row first (FOR NO KEY UPDATE: changes of one
user's factors run one at a time, logins and refreshes are not blocked), then the factor
rows, then the recovery codes: the order every factor path takes, so that "the first second
factor brings recovery codes" and "the last one takes them" hold under races.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute

from app.extensions import db
from app.logs import security_event
from app.models import Factor
from app.models import PasskeyRegistration
from app.models import User
from app.services.accounts import recovery_codes
from app.services.accounts import totp
from app.services.accounts.credentials import UserRef
from app.services.accounts.credentials import user_clause
from app.services.audit import events
from app.services.errors import AccessDenied
from app.services.errors import FactorNotFound
from app.services.errors import InvalidCredentials
from app.services.errors import InvalidInput
from app.services.errors import KeyUnavailable
from app.services.errors import StepUpRequired
from app.services.errors import UserNotFound
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.tokens import family
from app.services.tokens.access_tokens import VerifiedAccess
from app.services.tokens.sessions import authenticated_caller
from app.services.tokens.sessions import require_live_session
from app.services.tokens.sessions import require_recent_sign_in
from app.services.tokens.sessions import verified_caller
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)
PENDING_TTL = timedelta(minutes=10)  # an unconfirmed TOTP factor is gone after this
MAX_FACTORS = 10  # per user, pending ones included
MAX_NAME_LENGTH = 100
DEFAULT_NAMES = {"totp": "Authenticator app", "passkey": "Passkey"}
SECOND_FACTOR_STEP_UP = "Sign in with your second factor to change your second factors."
TOO_MANY_FACTORS = f"a user may have at most {MAX_FACTORS} factors; remove one first"


@dataclass(frozen=True)
class FactorView:
    """What a user (or an admin) sees of a factor: never a secret."""

    id: int
    type: str
    name: str
    created_at: datetime
    last_used_at: datetime | None


@dataclass(frozen=True)
class FactorList:
    factors: list[FactorView]
    recovery_codes_left: int


@dataclass(frozen=True)
class Enrolment:
    """A pending TOTP factor: the secret, shown once, and the URI an app scans."""

    id: int
    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class Confirmed:
    id: int
    recovery_codes: list[str] | None  # the first second factor brings a set


def has_second_factor(user_id: sa.ColumnElement[int] | InstrumentedAttribute[int] | int
                      ) -> sa.Exists:
    """SQL: the user has a second factor (SPEC §13.1), for a user row's query."""
    return sa.exists().where(Factor.user_id == user_id, Factor.confirmed_at.is_not(None))


def _pending_alive(now: datetime) -> sa.ColumnElement[bool]:
    return Factor.created_at > now - PENDING_TTL


def at_factor_limit(user_id: int, now: datetime) -> bool:
    """The user holds MAX_FACTORS factors (live pending ones included): no new one."""
    count = db.session.execute(
        select(sa.func.count()).select_from(Factor)
        .where(Factor.user_id == user_id,
               sa.or_(Factor.confirmed_at.is_not(None), _pending_alive(now)))).scalar_one()
    return bool(count >= MAX_FACTORS)


def answerable(user_id: int) -> list[str]:
    """What the user can answer a challenge with: "totp", "passkey", "recovery_code"."""
    types = set(db.session.execute(
        select(Factor.type).where(Factor.user_id == user_id, Factor.confirmed_at.is_not(None))
        .distinct()).scalars())
    kinds: list[str] = [kind for kind in ("totp", "passkey") if kind in types]
    if kinds and recovery_codes.remaining(user_id):
        kinds.append("recovery_code")
    return kinds


# -- self-service (SPEC §13.2) --------------------------------------------------------------

def list_own(tenant_slug: str, access_token: str, now: datetime) -> FactorList:
    """GET …/mfa: the caller's active factors and how many recovery codes are left."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller = authenticated_caller(tenant, access_token, now)
        return _listing(caller.user_id)


def enrol_totp(tenant_slug: str, access_token: str, name: str | None,
               now: datetime) -> Enrolment:
    """POST …/mfa/totp: a pending TOTP factor (usable once confirmed, gone after 10 min)."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller, username = locked_caller(tenant, access_token, now)
        enrolment = start_totp(tenant, caller.user_id, username, name, now)
    return enrolment


def confirm_totp(tenant_slug: str, access_token: str, factor_id: int, code: str,
                 now: datetime) -> Confirmed:
    """POST …/mfa/totp/{id}/confirm: a right code makes the factor usable; the user's first
    second factor brings ten recovery codes. A wrong code: InvalidCredentials, no change."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller, _ = locked_caller(tenant, access_token, now)
        confirmed = finish_totp(tenant, caller.user_id, factor_id, code, now,
                                events.user_actor(caller.user_id))
    if confirmed is None:
        raise InvalidCredentials()
    return confirmed


def delete_own(tenant_slug: str, access_token: str, factor_id: int, now: datetime) -> None:
    """DELETE …/mfa/{id}: remove one of the caller's factors (pending ones too); the last
    second factor takes the recovery codes with it."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller, _ = locked_caller(tenant, access_token, now)
        row = db.session.execute(
            sa.delete(Factor).where(Factor.id == factor_id, Factor.user_id == caller.user_id)
            .returning(Factor.id, Factor.type, Factor.confirmed_at)
        ).one_or_none()
        if row is None:
            raise FactorNotFound()
        if row.confirmed_at is not None:
            _removed(tenant.id, caller.user_id, [(row.id, row.type)], now,
                     events.user_actor(caller.user_id))
    if row.confirmed_at is not None:
        security_event("mfa_removed", tenant=tenant_slug, user_id=caller.user_id,
                       factor_id=factor_id)


def regenerate_recovery_codes(tenant_slug: str, access_token: str, now: datetime) -> list[str]:
    """POST …/mfa/recovery-codes: a new set; the old set dies."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller, _ = locked_caller(tenant, access_token, now)
        if not db.session.execute(select(has_second_factor(caller.user_id))).scalar():
            raise InvalidInput("recovery codes need a second factor: enrol one first")
        codes = recovery_codes.replace_codes(tenant.id, caller.user_id, now)
        events.record_event(events.MFA_RECOVERY_CODES_REGENERATED, tenant.id,
                            events.user_actor(caller.user_id),
                            {"user_id": str(caller.user_id)}, now)
    return codes


# -- admin (SPEC §13.4) ---------------------------------------------------------------------

def user_factors(tenant_slug: str, who: UserRef) -> FactorList:
    """GET /admin/users/{id}/factors."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        user_id = db.session.execute(select(User.id).where(user_clause(tenant.id, who))).scalar()
        if user_id is None:
            raise UserNotFound(tenant_slug, who)
        return _listing(user_id)


def remove_all(tenant_slug: str, who: UserRef, now: datetime, actor: events.Actor) -> int:
    """DELETE /admin/users/{id}/factors (a lost phone): every second factor and the recovery
    codes go, and every session of the user is revoked. Returns how many factors went."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        user = family.lock_user(tenant.id, user_clause(tenant.id, who))
        if user is None:
            raise UserNotFound(tenant_slug, who)
        revoked = family.revoke_all_for_user(tenant.id, user.id, now, "admin", actor)
        # A registration begun before (with a token now revoked) must not finish after.
        db.session.execute(sa.delete(PasskeyRegistration)
                           .where(PasskeyRegistration.user_id == user.id))
        gone = db.session.execute(
            sa.delete(Factor).where(Factor.user_id == user.id)
            .returning(Factor.id, Factor.type, Factor.confirmed_at)).all()
        confirmed = [(row.id, row.type) for row in gone if row.confirmed_at is not None]
        recovery_codes.delete_codes(user.id)
        if confirmed:
            _record_removed(tenant.id, user.id, confirmed, now, actor)
    security_event("mfa_removed", tenant=tenant_slug, user_id=user.id, factors=len(confirmed),
                   sessions_revoked=revoked)
    return len(confirmed)


# -- the pieces the sign-in flow shares (inside the caller's transaction) -------------------

def start_totp(tenant: TenantInfo, user_id: int, username: str, name: str | None,
               now: datetime) -> Enrolment:
    """Insert a pending TOTP factor for a user whose row the caller locked."""
    name = checked_name(name, "totp")
    if at_factor_limit(user_id, now):
        raise InvalidInput(TOO_MANY_FACTORS)
    secret = totp.new_secret()
    factor_id = db.session.execute(sa.insert(Factor).values(
        tenant_id=tenant.id, user_id=user_id, type="totp", name=name, created_at=now,
        secret_encrypted=totp.encrypt_secret(secret, tenant.id, user_id),
    ).returning(Factor.id)).scalar_one()
    return Enrolment(factor_id, secret,
                     totp.provisioning_uri(secret, username, tenant.name or tenant.slug))


def pending_enrolment(tenant: TenantInfo, user_id: int, factor_id: int, username: str,
                      now: datetime) -> Enrolment | None:
    """The enrolment of a still-pending factor again (an idempotent retry), or None."""
    row = db.session.execute(
        select(Factor.secret_encrypted)
        .where(Factor.id == factor_id, Factor.user_id == user_id,
               Factor.confirmed_at.is_(None), _pending_alive(now))).one_or_none()
    if row is None or row.secret_encrypted is None:
        return None
    secret = _decrypted(row.secret_encrypted, tenant.id, user_id, factor_id)
    return Enrolment(factor_id, secret,
                     totp.provisioning_uri(secret, username, tenant.name or tenant.slug))


def finish_totp(tenant: TenantInfo, user_id: int, factor_id: int, code: str, now: datetime,
                actor: events.Actor) -> Confirmed | None:
    """Confirm a pending factor with a right code (its step is then spent); None if the code
    is wrong or the factor is not this user's pending one."""
    accepted = verify_totp(tenant, user_id, code, now, pending_factor_id=factor_id)
    if accepted is None:
        return None
    first = not db.session.execute(select(has_second_factor(user_id))).scalar()
    db.session.execute(sa.update(Factor).where(Factor.id == factor_id)
                       .values(confirmed_at=now))
    return enrolled(tenant, user_id, factor_id, "totp", first, now, actor)


def enrolled(tenant: TenantInfo, user_id: int, factor_id: int, kind: str, first: bool,
             now: datetime, actor: events.Actor) -> Confirmed:
    """A factor just became usable: the user's first second factor brings ten recovery
    codes; `mfa.enrolled` is recorded in the same transaction."""
    codes = recovery_codes.replace_codes(tenant.id, user_id, now) if first else None
    events.record_event(events.MFA_ENROLLED, tenant.id, actor,
                        {"user_id": str(user_id), "factor_id": str(factor_id), "type": kind},
                        now)
    return Confirmed(factor_id, codes)


def verify_totp(tenant: TenantInfo, user_id: int, code: str, now: datetime, *,
                pending_factor_id: int | None = None) -> int | None:
    """Check a TOTP code against the user's confirmed factors (or one pending factor); the
    id of the factor it belongs to, or None. The factor rows are locked and the code's time
    step is recorded as spent: a code is accepted at most once per factor, and of parallel
    uses of one code exactly one gets through."""
    query = select(Factor.id, Factor.secret_encrypted, Factor.last_step).where(
        Factor.user_id == user_id, Factor.type == "totp")
    if pending_factor_id is None:
        query = query.where(Factor.confirmed_at.is_not(None))
    else:
        query = query.where(Factor.id == pending_factor_id, Factor.confirmed_at.is_(None),
                            _pending_alive(now))
    for row in db.session.execute(query.order_by(Factor.id).with_for_update()).all():
        secret = _decrypted(row.secret_encrypted, tenant.id, user_id, row.id)
        step = totp.matching_step(secret, code, now)
        if step is not None and (row.last_step is None or step > row.last_step):
            db.session.execute(sa.update(Factor).where(Factor.id == row.id)
                               .values(last_step=step, last_used_at=now))
            return int(row.id)
    return None


def reencrypt_secrets(batch_size: int = 100) -> tuple[int, int]:
    """Move every TOTP secret to the current SECRET_KEY (`flask keys reencrypt`); returns
    (re-encrypted, undecryptable). Short batches by id, each row locked while rewritten."""
    moved = failed = 0
    after = 0
    while True:
        with transaction():
            rows = db.session.execute(
                select(Factor.id, Factor.tenant_id, Factor.user_id, Factor.secret_encrypted)
                .where(Factor.id > after, Factor.secret_encrypted.is_not(None))
                .order_by(Factor.id).limit(batch_size).with_for_update()).all()
            for row in rows:
                try:
                    secret, index = totp.decrypt_secret(row.secret_encrypted, row.tenant_id,
                                                        row.user_id)
                except InvalidTag:
                    failed += 1
                    continue
                if index:
                    db.session.execute(sa.update(Factor).where(Factor.id == row.id).values(
                        secret_encrypted=totp.encrypt_secret(secret, row.tenant_id,
                                                             row.user_id)))
                    moved += 1
        if not rows:
            return moved, failed
        after = rows[-1].id


# -- helpers --------------------------------------------------------------------------------

def _decrypted(blob: bytes, tenant_id: int, user_id: int, factor_id: int) -> str:
    """A TOTP secret; KeyUnavailable (503, the transaction rolled back: no answer counted)
    when no configured secret decrypts it (SPEC §11: an operator's mistake, not the user's)."""
    try:
        return totp.decrypt_secret(blob, tenant_id, user_id)[0]
    except InvalidTag:
        log.error("a TOTP secret cannot be decrypted with any configured secret "
                  "(SECRET_KEY / SECRET_KEY_FALLBACKS)",
                  extra={"event": "totp_secret_undecryptable", "factor_id": factor_id})
        raise KeyUnavailable() from None


def locked_caller(tenant: TenantInfo, access_token: str,
                   now: datetime) -> tuple[VerifiedAccess, str]:
    """The caller of a factor change, with their user row locked (FOR NO KEY UPDATE: factor
    changes of one user, and answers to their challenges, run one after the other); the
    caller and their username.

    A recent sign-in (RFC 9470 max_age), and once the user has a second factor, a sign-in
    that used one (`mfa` in its amr), decided under the lock: a session that proved only
    the password, before a factor existed, cannot take the factors over."""
    caller = verified_caller(tenant, access_token, now)
    require_recent_sign_in(caller, tenant, now)
    username = db.session.execute(
        select(User.username).where(User.id == caller.user_id).with_for_update(key_share=True)
    ).scalar_one_or_none()
    if username is None:  # the user row went, and its sessions with it
        raise AccessDenied()
    # Live, read after the lock: a revoke-all (remove-all, disable, password change) that
    # held the row commits first, and its revocation is seen here.
    require_live_session(caller, now)
    if "mfa" not in (caller.claims.get("amr") or ()) and db.session.execute(
            select(has_second_factor(caller.user_id))).scalar():
        raise StepUpRequired(tenant.step_up_max_age, SECOND_FACTOR_STEP_UP)
    return caller, str(username)


def _listing(user_id: int) -> FactorList:
    rows = db.session.execute(
        select(Factor.id, Factor.type, Factor.name, Factor.created_at, Factor.last_used_at)
        .where(Factor.user_id == user_id, Factor.confirmed_at.is_not(None))
        .order_by(Factor.id)).all()
    return FactorList([FactorView(*row) for row in rows], recovery_codes.remaining(user_id))


def checked_name(name: str | None, kind: str) -> str:
    """A factor's name, or the default for its kind; InvalidInput if too long."""
    name = (name or "").strip() or DEFAULT_NAMES[kind]
    if len(name) > MAX_NAME_LENGTH or "\x00" in name:
        raise InvalidInput(f"name must be at most {MAX_NAME_LENGTH} characters, no NUL")
    return name


def _removed(tenant_id: int, user_id: int, factors: list[tuple[int, str]], now: datetime,
             actor: events.Actor) -> None:
    """After removing confirmed factors: the last one takes the recovery codes along."""
    if not db.session.execute(select(has_second_factor(user_id))).scalar():
        recovery_codes.delete_codes(user_id)
    _record_removed(tenant_id, user_id, factors, now, actor)


def _record_removed(tenant_id: int, user_id: int, factors: list[tuple[int, str]],
                    now: datetime, actor: events.Actor) -> None:
    events.record_events([
        events.NewEvent(events.MFA_REMOVED, tenant_id, actor,
                        {"user_id": str(user_id), "factor_id": str(factor_id), "type": kind})
        for factor_id, kind in factors], now)
