"""What an answer to an auth_session comes to (app.services.signin.challenge): decided
inside the transaction, delivered (returned or raised) after it commits, so that what the
decision wrote (an attempt counted, an auth_session ended, an alarm) is kept."""
from __future__ import annotations

import logging
from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from datetime import datetime

from app.logs import security_event
from app.services.audit import events
from app.services.errors import InvalidCredentials
from app.services.errors import InvalidSession
from app.services.errors import ServiceError
from app.services.errors import TooManyAttempts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodeIssued:
    authorization_code: str
    recovery_codes: list[str] | None = None  # after enrolling inside the flow


@dataclass(frozen=True)
class EnrolmentOffered:
    auth_session: str
    secret: str
    otpauth_uri: str


Result = CodeIssued | EnrolmentOffered


class Outcome(ABC):
    @abstractmethod
    def result(self, tenant_slug: str) -> Result:
        """What the caller gets: a code, an enrolment, or a refusal raised."""


@dataclass(frozen=True)
class Done(Outcome):
    value: Result

    def result(self, tenant_slug: str) -> Result:
        return self.value


@dataclass(frozen=True)
class Invalid(Outcome):
    def result(self, tenant_slug: str) -> Result:
        raise InvalidSession()


@dataclass(frozen=True)
class Refused(Outcome):
    error: ServiceError

    def result(self, tenant_slug: str) -> Result:
        raise self.error


@dataclass(frozen=True)
class Wrong(Outcome):
    """A wrong answer, counted; `user_id` is None when nobody is known (a passwordless
    start for an unknown username, or an answer no passkey of the tenant gave)."""

    user_id: int | None
    ended: bool
    reason: str | None = None

    def result(self, tenant_slug: str) -> Result:
        log.info("wrong second-factor answer",
                 extra={"event": "second_factor_failed", "tenant": tenant_slug,
                        "user_id": self.user_id, "auth_session_ended": self.ended,
                        "reason": self.reason})
        if self.ended:
            security_event("mfa_failed", tenant=tenant_slug, user_id=self.user_id)
        raise InvalidCredentials()


@dataclass(frozen=True)
class CloneSuspected(Outcome):
    """A passkey whose signature counter went backwards: refused, the auth_session ended,
    `mfa.passkey_clone_suspected` recorded (SPEC §13.5)."""

    user_id: int
    factor_id: int

    def result(self, tenant_slug: str) -> Result:
        security_event("passkey_clone_suspected", tenant=tenant_slug, user_id=self.user_id,
                       factor_id=self.factor_id)
        raise InvalidCredentials()


@dataclass(frozen=True)
class Throttled(Outcome):
    tenant_id: int
    user_id: int
    retry_after: int
    window_start: datetime
    limit: str  # "mfa" (per login window) or "mfa_day"
    client_address: str | None
    now: datetime

    def result(self, tenant_slug: str) -> Result:
        events.record_login_throttled(self.tenant_id, [(self.limit, str(self.user_id),
                                                        self.window_start)],
                                      self.client_address, self.user_id, self.now)
        raise TooManyAttempts(self.retry_after)
