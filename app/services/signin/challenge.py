"""The Authorization Challenge Endpoint (SPEC §13.3, §13.5; draft-ietf-oauth-first-party-apps-04):
a tenant's own app signs its user in step by step and ends with an authorization code.

A challenge session (`auth_session`) is a row, the state machine of docs/design.md:

    first request (password right, a second factor needed) -> open
    passwordless start (`passkey=1`, always)               -> open (amr empty: a passkey answers)
    open  --right answer-->                           used   (one authorization code)
    open  --wrong answer, under the limit-->          open   (attempts + 1)
    open  --wrong answer, the last allowed-->         ended  (mfa.failed)
    open  --a passkey's counter went backwards-->     ended  (mfa.passkey_clone_suspected)
    open  --300 s pass-->                             (expired: as good as ended)
    open  --the user's password changed, or the user was disabled or logged out
            everywhere-->                             ended
    used / ended / expired / unknown / another tenant's  -> invalid_session

Every answer locks its user's row, then its own row (SELECT … FOR UPDATE), so parallel
answers to one auth_session are decided one after the other: at most one code, and each wrong answer
counted. A TOTP code is accepted at most once per factor (its time step is recorded under
the factor row's lock), a recovery code once (its row's UPDATE), a passkey's assertion once
(it answers the auth_session's own challenge, which the used auth_session takes along).
Wrong answers after a password are also counted per user across auth_sessions
(BATON_MFA_MAX_FAILURES_PER_USER per login window, then 429); a passwordless start counts
against the client's address instead (docs/design.md). Outcomes are decided inside the
transaction and raised after it commits (app.services.signin.outcomes), so an attempt
counted is an attempt kept.
"""
from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from typing import NoReturn

import sqlalchemy as sa
from sqlalchemy import select

from app.crypto import b64url
from app.crypto import token_digest
from app.extensions import db
from app.models import ChallengeSession
from app.models import User
from app.runtime import runtime
from app.services.accounts import factors
from app.services.accounts import passkeys
from app.services.accounts import recovery_codes
from app.services.accounts import webauthn
from app.services.accounts.credentials import normalize_username
from app.services.audit import events
from app.services.errors import InsufficientAuthorization
from app.services.errors import InvalidInput
from app.services.errors import LoginThrottled
from app.services.signin import codes
from app.services.signin.outcomes import CloneSuspected
from app.services.signin.outcomes import CodeIssued
from app.services.signin.outcomes import Done
from app.services.signin.outcomes import EnrolmentOffered
from app.services.signin.outcomes import Invalid
from app.services.signin.outcomes import Outcome
from app.services.signin.outcomes import Refused
from app.services.signin.outcomes import Result
from app.services.signin.outcomes import Throttled
from app.services.signin.outcomes import Wrong
from app.services.signin.password_grant import check_password
from app.services.signin.password_grant import confirm_unchanged
from app.services.signin.throttling import CountedStart
from app.services.signin.throttling import release_counted_start
from app.services.signin.throttling import release_second_factor_answers
from app.services.signin.throttling import reserve_address_attempt
from app.services.signin.throttling import reserve_second_factor_answer
from app.services.tenancy.lookup import TenantInfo
from app.services.tenancy.lookup import lookup_tenant
from app.services.unit_of_work import transaction

__all__ = ["Answer", "CodeIssued", "EnrolmentOffered", "FirstRequest", "PasskeyStart",
           "answer", "start", "start_passkey"]

AUTH_SESSION_TTL = timedelta(seconds=300)
AUTH_SESSION_BYTES = 32
# RFC 8176: what a sign-in proved.
SECOND_FACTOR_AMR = ("pwd", "otp", "mfa")  # a password and a one-time code
PASSWORD_AND_PASSKEY_AMR = ("pwd", "pop", "mfa")  # a password and a proof of possession
PASSKEY_VERIFIED_AMR = ("pop", "mfa")  # a passkey whose authenticator verified the user
PASSKEY_AMR = ("pop",)  # a passkey alone (user present, not verified)


@dataclass(frozen=True)
class FirstRequest:
    username: str
    password: str
    code_challenge: str  # S256, checked by the caller (RFC 7636 §4.2 format)
    client_id: str | None = None


@dataclass(frozen=True)
class PasskeyStart:
    """A passwordless first request (`passkey=1`, SPEC §13.5); no username: discoverable."""

    code_challenge: str
    username: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class Answer:
    """A follow-up: the auth_session and exactly one of its answers."""

    auth_session: str
    otp: str | None = None
    recovery_code: str | None = None
    webauthn_response: str | None = None  # the credential JSON a browser produced
    enroll: str | None = None  # "totp" (tenant policy mfa=required)


def start(tenant_slug: str, first: FirstRequest, *, now: datetime,
          client_address: str | None = None) -> CodeIssued:
    """The first request: the password, then a code, or InsufficientAuthorization with an
    auth_session to answer (or, under mfa=required, to enrol a factor with)."""
    checked = check_password(tenant_slug, first.username, first.password, now=now,
                             client_address=client_address)
    tenant = checked.tenant
    options = None
    with transaction():
        unchanged = confirm_unchanged(checked, first.password, client_address)
        fingerprint = codes.sign_in_fingerprint(unchanged.password_hash, unchanged.epoch)
        if not unchanged.needs_second_factor:
            return CodeIssued(codes.issue_code(
                tenant, checked.user_id, fingerprint, first.code_challenge, first.client_id,
                ("pwd",), now, now))
        answers = factors.answerable(checked.user_id)
        digest = None
        if "passkey" in answers:
            options, digest = passkeys.sign_in_options(tenant, checked.user_id)
        auth_session = _open(tenant, checked.user_id, first.code_challenge, first.client_id,
                             ("pwd",), now, webauthn_challenge=digest,
                             password_fingerprint=fingerprint)
    if answers:
        raise InsufficientAuthorization(auth_session, answers, webauthn=options)
    # mfa=required and nothing to answer with: enrol a TOTP factor inside the flow.
    raise InsufficientAuthorization(auth_session, [], enroll=["totp"])


def start_passkey(tenant_slug: str, first: PasskeyStart, *, now: datetime,
                  client_address: str | None = None) -> NoReturn:
    """A passwordless start: always InsufficientAuthorization with request options, of the
    same shape whether the username exists and has passkeys or not (decoys otherwise). It
    counts as a login attempt of the client's address until a passkey answers it."""
    username = normalize_username(first.username) if first.username is not None else None
    try:
        with transaction():
            tenant = lookup_tenant(tenant_slug)
            webauthn.require_set_up(webauthn.relying_party(tenant))
            counted = reserve_address_attempt(tenant.id, client_address, now,
                                              runtime().login_limits)
            user_id, options, digest = passkeys.passwordless_options(
                tenant, username, user_verification=tenant.mfa == "required")
            auth_session = _open(tenant, user_id, first.code_challenge, first.client_id, (),
                                 now, webauthn_challenge=digest, discoverable=username is None,
                                 counted=counted)
    except LoginThrottled as throttled:  # (baton_login_total counts password logins only)
        events.record_login_throttled(throttled.tenant_id, throttled.limits, client_address,
                                      None, now)
        raise
    raise InsufficientAuthorization(auth_session, ["passkey"], webauthn=options)


def answer(tenant_slug: str, given: Answer, *, now: datetime,
           client_address: str | None = None) -> Result:
    """A follow-up: one answer to an open auth_session. A malformed webauthn_response is
    refused (InvalidInput) before anything is read or counted."""
    assertion = (webauthn.parse_assertion(given.webauthn_response)
                 if given.webauthn_response is not None else None)
    with transaction():
        tenant = lookup_tenant(tenant_slug)
        challenge = _lock(tenant, given.auth_session, now, assertion)
        outcome: Outcome
        if challenge is None or not _user_unchanged(challenge):
            outcome = Invalid()
        elif not challenge.amr:
            outcome = _passwordless(tenant, challenge, assertion, now, client_address)
        elif given.enroll is not None:
            outcome = _enrolment(tenant, challenge, given, now)
        else:
            outcome = _check(tenant, challenge, given, assertion, now, client_address)
    return outcome.result(tenant_slug)


# -- the steps -----------------------------------------------------------------------------

def _open(tenant: TenantInfo, user_id: int | None, code_challenge: str, client_id: str | None,
          amr: tuple[str, ...], now: datetime, *, webauthn_challenge: bytes | None = None,
          discoverable: bool = False, password_fingerprint: bytes | None = None,
          counted: CountedStart | None = None) -> str:
    auth_session = b64url(secrets.token_bytes(AUTH_SESSION_BYTES))
    db.session.execute(sa.insert(ChallengeSession).values(
        tenant_id=tenant.id, user_id=user_id, digest=token_digest(auth_session),
        code_challenge=code_challenge, client_id=client_id, amr=list(amr),
        created_at=now, expires_at=now + AUTH_SESSION_TTL,
        webauthn_challenge=webauthn_challenge, discoverable=discoverable,
        password_fingerprint=password_fingerprint,
        counted_address=counted.network if counted else None,
        counted_window=counted.window_start if counted else None))
    return auth_session


def _lock(tenant: TenantInfo, auth_session: str, now: datetime,
          assertion: webauthn.Assertion | None) -> ChallengeSession | None:
    """The open, unexpired challenge of this tenant, locked after its user's row (the order
    of every factor change: the user first); None for anything else.

    The user row is locked FOR NO KEY UPDATE: an answer may change the user's factors (a
    time step spent, a factor confirmed in the flow, a recovery code used, a passkey's
    counter), so answers and factor changes of one user run one after the other, and a
    login's share lock waits for them; refreshes and session inserts (FOR KEY SHARE) do
    not. A discoverable passkey's auth_session has no user yet: the answering credential
    names the one to lock (an answer no passkey of the tenant gave locks no user)."""
    digest = token_digest(auth_session)
    row = db.session.execute(  # unlocked: only to know whose row to lock first
        select(ChallengeSession.user_id)
        .where(ChallengeSession.tenant_id == tenant.id, ChallengeSession.digest == digest)
    ).one_or_none()
    if row is None:
        return None
    user_id = row.user_id
    if user_id is None and assertion is not None:
        user_id = passkeys.owner_of(tenant, assertion.credential_id)
    if user_id is not None:
        db.session.execute(select(User.id).where(User.id == user_id)
                           .with_for_update(key_share=True))
    challenge = db.session.execute(
        select(ChallengeSession)
        .where(ChallengeSession.tenant_id == tenant.id, ChallengeSession.digest == digest)
        .with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if challenge is None or challenge.state != "open" or challenge.expires_at <= now \
            or challenge.user_id not in (None, user_id):
        return None
    return challenge


def _user_unchanged(challenge: ChallengeSession) -> bool:
    """After a password: the user is still enabled with the password the challenge was
    opened with; if not (a disable, a password change or reset while it was open), it ends.
    A passwordless challenge has no password to compare (the passkey's check looks at the
    user)."""
    fingerprint = challenge.password_fingerprint
    if fingerprint is None or challenge.user_id is None:
        return True
    now_state = codes.current_fingerprint(challenge.user_id)
    if now_state is not None and not now_state[1] and hmac.compare_digest(
            now_state[0], bytes(fingerprint)):
        return True
    challenge.state = "ended"
    return False


def _enrolment(tenant: TenantInfo, challenge: ChallengeSession, given: Answer,
               now: datetime) -> Outcome:
    """`enroll=totp`: a pending TOTP factor bound to this auth_session (the same one again on
    a retry), offered only to a user who has nothing to answer with under mfa=required."""
    if given.enroll != "totp":
        return Refused(InvalidInput("enroll must be 'totp'"))
    user_id = challenge.user_id
    assert user_id is not None  # a password was proven
    username = db.session.execute(select(User.username).where(User.id == user_id)).scalar_one()
    if tenant.mfa != "required" or factors.answerable(user_id):
        return Refused(InvalidInput("enroll is not offered for this auth_session"))
    offered = None
    if challenge.enroll_factor_id is not None:
        offered = factors.pending_enrolment(tenant, user_id, challenge.enroll_factor_id,
                                            username, now)
    if offered is None:
        offered = factors.start_totp(tenant, user_id, username, None, now)
        challenge.enroll_factor_id = offered.id
    return Done(EnrolmentOffered(given.auth_session, offered.secret, offered.otpauth_uri))


def _check(tenant: TenantInfo, challenge: ChallengeSession, given: Answer,
           assertion: webauthn.Assertion | None, now: datetime,
           client_address: str | None) -> Outcome:
    """A second factor after a password (otp, recovery_code or webauthn_response): a code,
    or one more wrong answer counted."""
    user_id = challenge.user_id
    assert user_id is not None  # a password was proven
    if assertion is not None and challenge.webauthn_challenge is None:
        return Refused(InvalidInput("no passkey was asked for in this auth_session"))
    limits = runtime().login_limits
    wait, window_start, limit = reserve_second_factor_answer(tenant.id, user_id, now, limits)
    if wait:
        return Throttled(tenant.id, user_id, wait, window_start, limit, client_address, now)
    enrolled: factors.Confirmed | None = None
    amr = SECOND_FACTOR_AMR
    if assertion is not None:
        verdict = _passkey_verdict(tenant, challenge, assertion, now, client_address)
        if isinstance(verdict, Outcome):
            return verdict
        amr = PASSWORD_AND_PASSKEY_AMR
    elif given.otp is not None and challenge.enroll_factor_id is not None:
        enrolled = factors.finish_totp(tenant, user_id, challenge.enroll_factor_id, given.otp,
                                       now, events.user_actor(user_id))
        if enrolled is None:
            return _wrong_answer(tenant, challenge, now, client_address)
    elif not _right_code(tenant, user_id, given, now):
        return _wrong_answer(tenant, challenge, now, client_address)
    release_second_factor_answers(tenant.id, user_id)
    return _issue(tenant, challenge, user_id, amr, now,
                  enrolled.recovery_codes if enrolled else None)


def _right_code(tenant: TenantInfo, user_id: int, given: Answer, now: datetime) -> bool:
    """A TOTP code of a confirmed factor, or an unused recovery code (then spent)."""
    if given.otp is not None:
        return factors.verify_totp(tenant, user_id, given.otp, now) is not None
    return _use_recovery_code(tenant, user_id, given.recovery_code or "", now)


def _passwordless(tenant: TenantInfo, challenge: ChallengeSession,
                  assertion: webauthn.Assertion | None, now: datetime,
                  client_address: str | None) -> Outcome:
    """A passkey alone (SPEC §13.5): amr `pop` (and `mfa` when the authenticator verified
    the user: required under mfa=required)."""
    if assertion is None:
        return Refused(InvalidInput("a passwordless auth_session is answered with "
                                    "webauthn_response"))
    verdict = _passkey_verdict(tenant, challenge, assertion, now, client_address)
    if isinstance(verdict, Outcome):
        return verdict
    if challenge.counted_address is not None and challenge.counted_window is not None:
        release_counted_start(CountedStart(challenge.counted_address, challenge.counted_window))
    challenge.user_id = verdict.user_id
    amr = PASSKEY_VERIFIED_AMR if verdict.user_verified else PASSKEY_AMR
    return _issue(tenant, challenge, verdict.user_id, amr, now)


def _passkey_verdict(tenant: TenantInfo, challenge: ChallengeSession,
                     assertion: webauthn.Assertion, now: datetime,
                     client_address: str | None) -> passkeys.PasskeyUsed | Outcome:
    """The passkey that answered, or the outcome of a wrong answer or of a clone alarm."""
    assert challenge.webauthn_challenge is not None  # every passwordless start has one
    verdict = passkeys.check_answer(
        tenant, assertion, bytes(challenge.webauthn_challenge), user_id=challenge.user_id,
        discoverable=challenge.discoverable,
        require_user_verification=not challenge.amr and tenant.mfa == "required",
        now=now, client_address=client_address)
    if isinstance(verdict, passkeys.CloneSuspected):
        challenge.state = "ended"
        return CloneSuspected(verdict.user_id, verdict.factor_id)
    if isinstance(verdict, passkeys.WrongPasskey):
        return _wrong_answer(tenant, challenge, now, client_address, verdict.reason)
    return verdict


def _issue(tenant: TenantInfo, challenge: ChallengeSession, user_id: int,
           amr: tuple[str, ...], now: datetime,
           new_recovery_codes: list[str] | None = None) -> Outcome:
    """The right answer: the auth_session is used, and its one code issued."""
    challenge.state = "used"
    fingerprint = challenge.password_fingerprint
    if fingerprint is None:  # passwordless: bound to the user as they are now
        now_state = codes.current_fingerprint(user_id)
        assert now_state is not None  # the user row is locked
        fingerprint = now_state[0]
    code = codes.issue_code(tenant, user_id, bytes(fingerprint), challenge.code_challenge,
                            challenge.client_id, amr, now, now)
    return Done(CodeIssued(code, new_recovery_codes))


def _use_recovery_code(tenant: TenantInfo, user_id: int, code: str, now: datetime) -> bool:
    if not recovery_codes.consume(user_id, code, now):
        return False
    events.record_event(events.MFA_RECOVERY_CODE_USED, tenant.id, events.user_actor(user_id),
                        {"user_id": str(user_id),
                         "recovery_codes_left": recovery_codes.remaining(user_id)}, now)
    return True


def _wrong_answer(tenant: TenantInfo, challenge: ChallengeSession, now: datetime,
                  client_address: str | None, reason: str | None = None) -> Outcome:
    challenge.attempts += 1
    # After a password, mfa.failed says someone who had it failed the second factor. A
    # passwordless start shows no secret (anyone may name a username), so its failures name
    # no user: a stranger must not be able to raise that alarm for someone.
    user_id = challenge.user_id if challenge.amr else None
    ended = challenge.attempts >= runtime().login_limits.mfa_answers
    if ended:
        challenge.state = "ended"
        events.record_event(events.MFA_FAILED, tenant.id, events.SYSTEM,
                            {"user_id": None if user_id is None else str(user_id),
                             "attempts": challenge.attempts,
                             "client_address": client_address}, now)
    return Wrong(user_id, ended, reason)
