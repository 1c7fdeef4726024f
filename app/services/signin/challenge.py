"""The Authorization Challenge Endpoint (SPEC §13.3; draft-ietf-oauth-first-party-apps-04):
a tenant's own app signs its user in step by step and ends with an authorization code.

A challenge session (`auth_session`) is a row, the state machine of docs/design.md:

    first request (password right, a second factor needed) -> open
    open  --right answer-->                           used   (one authorization code)
    open  --wrong answer, under the limit-->          open   (attempts + 1)
    open  --wrong answer, the last allowed-->         ended  (mfa.failed)
    open  --300 s pass-->                             (expired: as good as ended)
    used / ended / expired / unknown / another tenant's  -> invalid_session

Every answer locks the row first (SELECT … FOR UPDATE), so parallel answers to one
auth_session are decided one after the other: at most one code, and each wrong answer
counted. A TOTP code is accepted at most once per factor (its time step is recorded under
the factor row's lock), a recovery code once (its row's UPDATE). Wrong answers are also
counted per user across auth_sessions (BATON_MFA_MAX_FAILURES_PER_USER per login window,
then 429). Outcomes are decided inside the transaction and raised after it commits, so an
attempt counted is an attempt kept.
"""
from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import select

from app.crypto import b64url
from app.crypto import token_digest
from app.extensions import db
from app.logs import security_event
from app.models import ChallengeSession
from app.models import User
from app.runtime import runtime
from app.services.accounts import factors
from app.services.accounts import recovery_codes
from app.services.audit import events
from app.services.errors import InsufficientAuthorization
from app.services.errors import InvalidCredentials
from app.services.errors import InvalidInput
from app.services.errors import InvalidSession
from app.services.errors import ServiceError
from app.services.errors import TooManyAttempts
from app.services.signin import codes
from app.services.signin.password_grant import check_password
from app.services.signin.password_grant import confirm_unchanged
from app.services.signin.throttling import release_second_factor_answers
from app.services.signin.throttling import reserve_second_factor_answer
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction

log = logging.getLogger(__name__)
AUTH_SESSION_TTL = timedelta(seconds=300)
AUTH_SESSION_BYTES = 32
SECOND_FACTOR_AMR = ("pwd", "otp", "mfa")  # RFC 8176: password and a one-time code


@dataclass(frozen=True)
class FirstRequest:
    username: str
    password: str
    code_challenge: str  # S256, checked by the caller (RFC 7636 §4.2 format)
    client_id: str | None = None


@dataclass(frozen=True)
class Answer:
    """A follow-up: the auth_session and exactly one of its answers."""

    auth_session: str
    otp: str | None = None
    recovery_code: str | None = None
    enroll: str | None = None  # "totp" (tenant policy mfa=required)


@dataclass(frozen=True)
class CodeIssued:
    authorization_code: str
    recovery_codes: list[str] | None = None  # after enrolling inside the flow


@dataclass(frozen=True)
class EnrolmentOffered:
    auth_session: str
    secret: str
    otpauth_uri: str


def start(tenant_slug: str, first: FirstRequest, *, now: datetime,
          client_address: str | None = None) -> CodeIssued:
    """The first request: the password, then a code, or InsufficientAuthorization with an
    auth_session to answer (or, under mfa=required, to enrol a factor with)."""
    checked = check_password(tenant_slug, first.username, first.password, now=now,
                             client_address=client_address)
    tenant = checked.tenant
    with transaction():
        unchanged = confirm_unchanged(checked, first.password, client_address)
        fingerprint = codes.password_fingerprint(unchanged.password_hash)
        if not unchanged.needs_second_factor:
            return CodeIssued(codes.issue_code(
                tenant, checked.user_id, fingerprint, first.code_challenge, first.client_id,
                ("pwd",), now, now))
        answers = factors.answerable(checked.user_id)
        auth_session = _open(tenant, checked.user_id, fingerprint, first, now)
    if answers:
        raise InsufficientAuthorization(auth_session, answers)
    # mfa=required and nothing to answer with: enrol a TOTP factor inside the flow.
    raise InsufficientAuthorization(auth_session, [], enroll=["totp"])


def answer(tenant_slug: str, given: Answer, *, now: datetime,
           client_address: str | None = None) -> CodeIssued | EnrolmentOffered:
    """A follow-up: one answer to an open auth_session."""
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        challenge = _lock(tenant, given.auth_session, now)
        if challenge is None or not _user_unchanged(challenge):
            outcome: _Outcome = _Invalid()
        elif given.enroll is not None:
            outcome = _enrolment(tenant, challenge, given, now)
        else:
            outcome = _check(tenant, challenge, given, now, client_address)
    return outcome.result(tenant_slug)


# -- outcomes, decided in the transaction and delivered after it commits ------------------

class _Outcome:
    def result(self, tenant_slug: str) -> CodeIssued | EnrolmentOffered:
        raise NotImplementedError


@dataclass(frozen=True)
class _Done(_Outcome):
    value: CodeIssued | EnrolmentOffered

    def result(self, tenant_slug: str) -> CodeIssued | EnrolmentOffered:
        return self.value


@dataclass(frozen=True)
class _Invalid(_Outcome):
    def result(self, tenant_slug: str) -> CodeIssued | EnrolmentOffered:
        raise InvalidSession()


@dataclass(frozen=True)
class _Refused(_Outcome):
    error: ServiceError

    def result(self, tenant_slug: str) -> CodeIssued | EnrolmentOffered:
        raise self.error


@dataclass(frozen=True)
class _Wrong(_Outcome):
    user_id: int
    ended: bool

    def result(self, tenant_slug: str) -> CodeIssued | EnrolmentOffered:
        log.info("wrong second-factor answer",
                 extra={"event": "second_factor_failed", "tenant": tenant_slug,
                        "user_id": self.user_id, "auth_session_ended": self.ended})
        if self.ended:
            security_event("mfa_failed", tenant=tenant_slug, user_id=self.user_id)
        raise InvalidCredentials()


@dataclass(frozen=True)
class _Throttled(_Outcome):
    tenant_id: int
    user_id: int
    retry_after: int
    window_start: datetime
    limit: str  # "mfa" (per login window) or "mfa_day"
    client_address: str | None
    now: datetime

    def result(self, tenant_slug: str) -> CodeIssued | EnrolmentOffered:
        events.record_login_throttled(self.tenant_id, [(self.limit, str(self.user_id),
                                                        self.window_start)],
                                      self.client_address, self.user_id, self.now)
        raise TooManyAttempts(self.retry_after)


# -- the steps -----------------------------------------------------------------------------

def _open(tenant: TenantInfo, user_id: int, fingerprint: bytes, first: FirstRequest,
          now: datetime) -> str:
    auth_session = b64url(secrets.token_bytes(AUTH_SESSION_BYTES))
    db.session.execute(sa.insert(ChallengeSession).values(
        tenant_id=tenant.id, user_id=user_id, digest=token_digest(auth_session),
        code_challenge=first.code_challenge, client_id=first.client_id, amr=["pwd"],
        password_fingerprint=fingerprint, created_at=now, expires_at=now + AUTH_SESSION_TTL))
    return auth_session


def _lock(tenant: TenantInfo, auth_session: str, now: datetime) -> ChallengeSession | None:
    """The open, unexpired challenge of this tenant, locked after its user's row (the order
    of every factor change: the user first); None for anything else.

    The user row is locked FOR NO KEY UPDATE: an answer may change the user's factors (a
    time step spent, a factor confirmed in the flow, a recovery code used), so answers and
    factor changes of one user run one after the other, and a login's share lock waits for
    them; refreshes and session inserts (FOR KEY SHARE) do not."""
    digest = token_digest(auth_session)
    user_id = db.session.execute(  # unlocked: only to know whose row to lock first
        select(ChallengeSession.user_id)
        .where(ChallengeSession.tenant_id == tenant.id, ChallengeSession.digest == digest)
    ).scalar_one_or_none()
    if user_id is None:
        return None
    db.session.execute(select(User.id).where(User.id == user_id)
                       .with_for_update(key_share=True))
    challenge = db.session.execute(
        select(ChallengeSession)
        .where(ChallengeSession.tenant_id == tenant.id, ChallengeSession.digest == digest)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if challenge is None or challenge.state != "open" or challenge.expires_at <= now \
            or challenge.user_id != user_id:
        return None
    return challenge


def _user_unchanged(challenge: ChallengeSession) -> bool:
    """The challenge's user is still enabled with the password the challenge was opened
    with; if not (a disable, a password change or reset while it was open), it ends."""
    row = db.session.execute(
        select(User.password_hash, User.disabled_at).where(User.id == challenge.user_id)
    ).one()
    fingerprint = challenge.password_fingerprint
    if row.disabled_at is None and (fingerprint is None or hmac.compare_digest(
            codes.password_fingerprint(row.password_hash), bytes(fingerprint))):
        return True
    challenge.state = "ended"
    return False


def _enrolment(tenant: TenantInfo, challenge: ChallengeSession, given: Answer,
               now: datetime) -> _Outcome:
    """`enroll=totp`: a pending TOTP factor bound to this auth_session (the same one again on
    a retry), offered only to a user who has nothing to answer with under mfa=required."""
    if given.enroll != "totp":
        return _Refused(InvalidInput("enroll must be 'totp'"))
    user_id = challenge.user_id
    assert user_id is not None
    username = db.session.execute(select(User.username).where(User.id == user_id)).scalar_one()
    if tenant.mfa != "required" or factors.answerable(user_id):
        return _Refused(InvalidInput("enroll is not offered for this auth_session"))
    offered = None
    if challenge.enroll_factor_id is not None:
        offered = factors.pending_enrolment(tenant, user_id, challenge.enroll_factor_id,
                                            username, now)
    if offered is None:
        offered = factors.start_totp(tenant, user_id, username, None, now)
        challenge.enroll_factor_id = offered.id
    return _Done(EnrolmentOffered(given.auth_session, offered.secret, offered.otpauth_uri))


def _check(tenant: TenantInfo, challenge: ChallengeSession, given: Answer, now: datetime,
           client_address: str | None) -> _Outcome:
    """An otp or recovery_code answer: a code, or one more wrong answer counted."""
    user_id = challenge.user_id
    assert user_id is not None
    limits = runtime().login_limits
    wait, window_start, limit = reserve_second_factor_answer(tenant.id, user_id, now, limits)
    if wait:
        return _Throttled(tenant.id, user_id, wait, window_start, limit, client_address, now)
    enrolled: factors.Confirmed | None = None
    if given.otp is not None and challenge.enroll_factor_id is not None:
        enrolled = factors.finish_totp(tenant, user_id, challenge.enroll_factor_id, given.otp,
                                       now, events.user_actor(user_id))
        right = enrolled is not None
    elif given.otp is not None:
        right = factors.verify_totp(tenant, user_id, given.otp, now) is not None
    else:
        right = _use_recovery_code(tenant, user_id, given.recovery_code or "", now)
    if not right:
        return _wrong_answer(tenant, challenge, now, limits.mfa_answers, client_address)
    release_second_factor_answers(tenant.id, user_id)
    challenge.state = "used"
    assert challenge.password_fingerprint is not None
    code = codes.issue_code(tenant, user_id, bytes(challenge.password_fingerprint),
                            challenge.code_challenge, challenge.client_id, SECOND_FACTOR_AMR,
                            now, now)
    return _Done(CodeIssued(code, enrolled.recovery_codes if enrolled else None))


def _use_recovery_code(tenant: TenantInfo, user_id: int, code: str, now: datetime) -> bool:
    if not recovery_codes.consume(user_id, code, now):
        return False
    events.record_event(events.MFA_RECOVERY_CODE_USED, tenant.id, events.user_actor(user_id),
                        {"user_id": str(user_id),
                         "recovery_codes_left": recovery_codes.remaining(user_id)}, now)
    return True


def _wrong_answer(tenant: TenantInfo, challenge: ChallengeSession, now: datetime,
                  allowed: int, client_address: str | None) -> _Outcome:
    challenge.attempts += 1
    user_id = challenge.user_id
    assert user_id is not None
    ended = challenge.attempts >= allowed
    if ended:
        challenge.state = "ended"
        events.record_event(events.MFA_FAILED, tenant.id, events.SYSTEM,
                            {"user_id": str(user_id), "attempts": challenge.attempts,
                             "client_address": client_address}, now)
    return _Wrong(user_id, ended)
