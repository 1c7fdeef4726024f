"""Passkeys (SPEC §13.5): registration by the signed-in user, and what the sign-in flow asks
of a user's passkeys (their request options, the check of an answer).

Registration is two requests. `registration_options` (a recent sign-in, as for every factor
change) stores the challenge it sends, as a digest bound to the tenant and the user, for
300 s; `register` spends it (deleted, right or wrong: single use), lets py_webauthn verify
the browser's answer (app.services.accounts.webauthn) and adds the factor, confirmed at
once; the user's first second factor brings the recovery codes, as a TOTP factor's does.
Both lock the user row first (FOR NO KEY UPDATE, `factors.locked_caller`, which also asks
for a sign-in with a second factor once the user has one), then factors: the order of every
factor change (app.services.accounts.factors).

At sign-in (inside the challenge flow's transaction, its challenge row locked): the
answering credential's factor row is locked (FOR UPDATE), so its signature counter moves
under one lock at a time; a counter that goes backwards refuses the answer and records
`mfa.passkey_clone_suspected` in the same transaction (the caller raises after it commits).
"""
from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from app.extensions import db
from app.models import Factor
from app.models import PasskeyRegistration
from app.models import User
from app.services.accounts import factors
from app.services.accounts import webauthn
from app.services.accounts.factors import FactorView
from app.services.accounts.factors import has_second_factor
from app.services.accounts.webauthn import StoredCredential
from app.services.audit import events
from app.services.errors import InvalidInput
from app.services.errors import PasskeyRejected
from app.services.errors import ServiceError
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)
REGISTRATION_TTL = timedelta(seconds=300)
MAX_PENDING_REGISTRATIONS = 5  # per user: a sixth ceremony drops the oldest


@dataclass(frozen=True)
class Registered:
    factor: FactorView
    recovery_codes: list[str] | None  # the user's first second factor brings a set


# -- registration (self-service, SPEC §13.5) --------------------------------------------------

def registration_options(tenant_slug: str, access_token: str, now: datetime) -> dict[str, Any]:
    """POST …/mfa/passkeys/options: PublicKeyCredentialCreationOptions JSON, its challenge
    stored (as a digest) for 300 s."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller, username = factors.locked_caller(tenant, access_token, now)
        rp = webauthn.relying_party(tenant)
        webauthn.require_set_up(rp)
        handle = _user_handle(caller.user_id)
        if factors.at_factor_limit(caller.user_id, now):
            raise InvalidInput(factors.TOO_MANY_FACTORS)
        challenge = webauthn.new_challenge()
        _make_room(caller.user_id, now)
        db.session.execute(sa.insert(PasskeyRegistration).values(
            tenant_id=tenant.id, user_id=caller.user_id,
            digest=webauthn.challenge_digest(challenge), created_at=now,
            expires_at=now + REGISTRATION_TTL))
        return webauthn.creation_options(rp, user_handle=handle, username=username,
                                         challenge=challenge,
                                         exclude=credentials_of(caller.user_id))


def register(tenant_slug: str, access_token: str, credential: str, name: str | None,
             now: datetime) -> Registered:
    """POST …/mfa/passkeys: verify the browser's answer to the options and add the passkey.
    Malformed input: InvalidInput before anything is written (once the caller's token
    passed: 401 comes first); a challenge unknown, used or expired, or an answer that does
    not verify: PasskeyRejected, the challenge spent."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        caller, _ = factors.locked_caller(tenant, access_token, now)
        registration = webauthn.parse_registration(credential)
        name = factors.checked_name(name, "passkey")
        rp = webauthn.relying_party(tenant)
        webauthn.require_set_up(rp)
        outcome = _register(tenant, rp, caller.user_id, registration, name, now)
    if isinstance(outcome, ServiceError):
        log.info("passkey registration refused", extra={
            "event": "passkey_registration_refused", "tenant": tenant_slug,
            "user_id": caller.user_id, "reason": outcome.message})
        raise outcome
    return outcome


def _register(tenant: TenantInfo, rp: webauthn.RelyingParty, user_id: int,
              registration: webauthn.Registration, name: str,
              now: datetime) -> Registered | ServiceError:
    """Inside the transaction, the user row locked: a refusal is returned, not raised, so
    that the spent challenge is committed with it."""
    expires_at = db.session.execute(
        sa.delete(PasskeyRegistration)
        .where(PasskeyRegistration.tenant_id == tenant.id,
               PasskeyRegistration.user_id == user_id,
               PasskeyRegistration.digest == webauthn.challenge_digest(registration.challenge))
        .returning(PasskeyRegistration.expires_at)).scalar_one_or_none()
    if expires_at is None or expires_at <= now:
        return PasskeyRejected("the challenge is unknown, used or expired (ask for new options)")
    try:
        new = webauthn.verify_registration(rp, registration)
    except webauthn.Rejected as rejected:
        return PasskeyRejected(rejected.reason)
    if factors.at_factor_limit(user_id, now):
        return InvalidInput(factors.TOO_MANY_FACTORS)
    first = not db.session.execute(select(has_second_factor(user_id))).scalar()
    factor_id = db.session.execute(
        insert(Factor).values(
            tenant_id=tenant.id, user_id=user_id, type="passkey", name=name, created_at=now,
            confirmed_at=now, credential_id=new.id, public_key=new.public_key,
            sign_count=new.sign_count, transports=list(new.transports))
        .on_conflict_do_nothing(index_elements=["tenant_id", "credential_id"])
        .returning(Factor.id)).scalar_one_or_none()
    if factor_id is None:  # the unique (tenant, credential id) decides, also under a race
        return InvalidInput("this passkey is already registered")
    confirmed = factors.enrolled(tenant, user_id, factor_id, "passkey", first, now,
                                 events.user_actor(user_id))
    return Registered(FactorView(factor_id, "passkey", name, now, None),
                      confirmed.recovery_codes)


def _user_handle(user_id: int) -> bytes:
    """The user's WebAuthn user handle, made now if the user has none yet (the caller locked
    the user row)."""
    handle = db.session.execute(
        select(User.webauthn_user_handle).where(User.id == user_id)).scalar_one()
    if handle is not None:
        return bytes(handle)
    handle = webauthn.new_user_handle()
    db.session.execute(sa.update(User).where(User.id == user_id)
                       .values(webauthn_user_handle=handle))
    return handle


def _make_room(user_id: int, now: datetime) -> None:
    """Drop the user's expired registration challenges, and the oldest beyond the limit."""
    newest = (select(PasskeyRegistration.id).where(PasskeyRegistration.user_id == user_id)
              .order_by(PasskeyRegistration.id.desc()).limit(MAX_PENDING_REGISTRATIONS - 1))
    db.session.execute(sa.delete(PasskeyRegistration).where(
        PasskeyRegistration.user_id == user_id,
        sa.or_(PasskeyRegistration.expires_at <= now,
               PasskeyRegistration.id.not_in(newest.scalar_subquery()))))


# -- what the sign-in flow asks (inside its transaction) --------------------------------------

def owner_of(tenant: TenantInfo, credential_id: bytes) -> int | None:
    """The user of a passkey of the tenant, read without a lock (to know whose row to lock
    first); None if the tenant has no such passkey."""
    return db.session.execute(
        select(Factor.user_id).where(Factor.tenant_id == tenant.id, Factor.type == "passkey",
                                     Factor.credential_id == credential_id)
    ).scalar_one_or_none()


def credentials_of(user_id: int) -> list[StoredCredential]:
    """The user's passkeys, as allowCredentials or excludeCredentials name them."""
    rows = db.session.execute(
        select(Factor.credential_id, Factor.transports)
        .where(Factor.user_id == user_id, Factor.type == "passkey").order_by(Factor.id)).all()
    return [StoredCredential(bytes(r.credential_id), tuple(r.transports or ())) for r in rows]


def sign_in_options(tenant: TenantInfo, user_id: int) -> tuple[dict[str, Any], bytes]:
    """Request options for a user who proved a password (a passkey as second factor), and
    the digest of their challenge for the auth_session."""
    challenge = webauthn.new_challenge()
    options = webauthn.request_options(webauthn.relying_party(tenant), challenge=challenge,
                                       allow=credentials_of(user_id))
    return options, webauthn.challenge_digest(challenge)


def passwordless_options(tenant: TenantInfo, username: str | None, *,
                         user_verification: bool) -> tuple[int | None, dict[str, Any], bytes]:
    """(the user id or None, request options, the challenge's digest) for a passwordless
    start. Without a username: no allowCredentials (a discoverable credential answers).
    With one: the user's passkeys, or, for a username without passkeys or without a user,
    decoys that look the same and stay the same (one query either way)."""
    user_id, allow = None, []
    if username is not None:
        rows = db.session.execute(
            select(User.id, Factor.credential_id, Factor.transports)
            .outerjoin(Factor, sa.and_(Factor.user_id == User.id, Factor.type == "passkey"))
            .where(User.tenant_id == tenant.id, User.username == username)
            .order_by(Factor.id)).all()
        user_id = rows[0].id if rows else None
        allow = [StoredCredential(bytes(r.credential_id), tuple(r.transports or ()))
                 for r in rows if r.credential_id is not None]
        allow = allow or webauthn.decoy_credentials(tenant, username)
    challenge = webauthn.new_challenge()
    options = webauthn.request_options(webauthn.relying_party(tenant), challenge=challenge,
                                       allow=allow, user_verification=user_verification)
    return user_id, options, webauthn.challenge_digest(challenge)


@dataclass(frozen=True)
class PasskeyUsed:
    user_id: int
    factor_id: int
    user_verified: bool  # the authenticator's UV flag


@dataclass(frozen=True)
class CloneSuspected:
    user_id: int
    factor_id: int


@dataclass(frozen=True)
class WrongPasskey:
    reason: str  # for the log only


def check_answer(tenant: TenantInfo, assertion: webauthn.Assertion, expected_digest: bytes, *,
                 user_id: int | None, discoverable: bool, require_user_verification: bool,
                 now: datetime, client_address: str | None
                 ) -> PasskeyUsed | CloneSuspected | WrongPasskey:
    """A passkey's answer to an auth_session: the credential must be the tenant's, of the
    auth_session's user (any user's when `discoverable`), its user handle the user's, the
    user enabled, and the assertion verified; then the counter moves forward (or the clone
    alarm goes off). The factor row stays locked until the caller's commit."""
    row = db.session.execute(
        select(Factor.id, Factor.user_id, Factor.public_key, Factor.sign_count,
               User.webauthn_user_handle, User.disabled_at)
        .join(User, User.id == Factor.user_id)
        .where(Factor.tenant_id == tenant.id, Factor.type == "passkey",
               Factor.credential_id == assertion.credential_id)
        .with_for_update(of=Factor)).one_or_none()
    if row is None:
        return WrongPasskey("no such passkey in the tenant")
    if not discoverable and row.user_id != user_id:
        return WrongPasskey("another user's passkey")
    if not _same_user_handle(assertion.user_handle, row.webauthn_user_handle, discoverable):
        return WrongPasskey("the user handle is not the passkey's user's")
    if row.disabled_at is not None:
        return WrongPasskey("the user is disabled")
    try:
        verified = webauthn.verify_assertion(
            webauthn.relying_party(tenant), assertion, expected_digest, bytes(row.public_key),
            require_user_verification=require_user_verification)
    except webauthn.Rejected as rejected:
        return WrongPasskey(rejected.reason)
    if webauthn.counter_went_backwards(row.sign_count, verified.sign_count):
        events.record_event(events.MFA_PASSKEY_CLONE_SUSPECTED, tenant.id, events.SYSTEM, {
            "user_id": str(row.user_id), "factor_id": str(row.id),
            "sign_count": row.sign_count, "presented_sign_count": verified.sign_count,
            "client_address": client_address}, now)
        return CloneSuspected(row.user_id, row.id)
    db.session.execute(sa.update(Factor).where(Factor.id == row.id)
                       .values(sign_count=verified.sign_count, last_used_at=now))
    return PasskeyUsed(row.user_id, row.id, verified.user_verified)


def _same_user_handle(presented: bytes | None, stored: bytes | None, required: bool) -> bool:
    """WebAuthn §7.2 step 6: a discoverable answer must name its user (userHandle); any
    userHandle given must be the credential's user's."""
    if presented is None:
        return not required
    return stored is not None and hmac.compare_digest(presented, bytes(stored))

