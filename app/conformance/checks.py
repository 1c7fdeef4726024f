"""The checks of `baton-conformance` (SPEC §12): each races a live deployment over HTTP
and says whether a rotation guarantee held.

N processes refresh one token at once (every one gets the same successor, or in strict
mode exactly one wins), a stolen token is replayed, a replay races the legitimate refresh,
a revoke races refreshes. Nothing here prints a token or the password.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC
from abc import abstractmethod
from dataclasses import dataclass
from typing import Callable

from app.conformance.racer import Call
from app.conformance.racer import RaceFailed
from app.conformance.racer import RaceTimeout
from app.conformance.racer import race


class Login(ABC):
    """A test user's sign-ins: a token response (`login()`: the password grant, or the
    challenge flow where the tenant turned the grant off), and an authorization code with
    its PKCE verifier (SPEC §13.3). Subclasses say how to reach the deployment."""

    @abstractmethod
    def __call__(self) -> dict:
        """A token response of the test user."""

    @abstractmethod
    def authorization_code(self) -> tuple[str, str] | None:
        """(code, code_verifier), or None if the user needs a second factor."""


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) of RFC 7636."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class ConnectionProblem(Exception):
    """The deployment could not be reached or answered something that is not JSON."""


@dataclass(frozen=True)
class Target:
    base: str
    tenant: str
    timeout: float

    def post(self, path: str, fields: dict) -> tuple[int, dict]:
        url = f"{self.base}/v1/tenants/{urllib.parse.quote(self.tenant, safe='')}/{path}"
        request = urllib.request.Request(
            url, data=urllib.parse.urlencode(fields).encode(), method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, _json(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (urllib.error.URLError, OSError, socket.timeout) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConnectionProblem(f"cannot reach {self.base}: {reason}") from None

    def refresh(self, token: str) -> tuple[int, dict]:
        return self.post("token", {"grant_type": "refresh_token", "refresh_token": token})

    def revoke(self, token: str) -> tuple[int, dict]:
        return self.post("revoke", {"token": token, "token_type_hint": "refresh_token"})


def _json(raw: bytes) -> dict:
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    detail: str


class Broken(Exception):
    """A check found a broken guarantee before its main step."""


def _race(target: Target, calls: list[Call]) -> list:
    """The calls raced (app.conformance.racer), their failures in this command's terms."""
    try:
        return race(calls, timeout=target.timeout + 60)
    except RaceFailed as exc:
        if isinstance(exc.error, ConnectionProblem):
            raise exc.error from None
        raise RuntimeError(exc.summary) from None  # a bug or a crash: nothing concluded
    except RaceTimeout as exc:
        raise ConnectionProblem(f"only {exc.finished} of {exc.total} requests answered") \
            from None


def _statuses(results: list[tuple[int, dict]]) -> str:
    counts: dict[str, int] = {}
    for status, body in results:
        key = f"{status} {body.get('error', '')}".strip()
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} x {key}" for key, n in sorted(counts.items()))


def _dead(target: Target, tokens: list[str]) -> list[str]:
    """The tokens that still refresh (each should have died with its session)."""
    return [t for t in tokens if target.refresh(t)[0] == 200]


def check_duplicates(target: Target, login: Login, processes: int) -> Result:
    """Reuse interval: N simultaneous refreshes of one token all get the same pair."""
    name = f"{processes} parallel refreshes of one token"
    first = login()["refresh_token"]
    results = _race(target, [(target.refresh, (first,))] * processes)
    ok = [body for status, body in results if status == 200]
    successors = {body.get("refresh_token") for body in ok}
    access = {body.get("access_token") for body in ok}
    if len(ok) != processes or len(successors) != 1 or len(access) != 1:
        return Result(name, False, f"{_statuses(results)}; {len(successors)} distinct "
                                   f"successors, {len(access)} distinct access tokens")
    if target.refresh(successors.pop())[0] != 200:
        return Result(name, False, "the shared successor does not refresh")
    return Result(name, True, f"{processes} x 200, one successor, one access token")


def check_strict(target: Target, login: Login, processes: int) -> Result:
    """Strict mode: of N simultaneous refreshes exactly one wins and the session dies."""
    name = f"{processes} parallel refreshes, strict mode"
    first = login()["refresh_token"]
    results = _race(target, [(target.refresh, (first,))] * processes)
    winners = [body for status, body in results if status == 200]
    losers = [body for status, body in results if status == 400
              and body.get("error") == "invalid_grant"]
    if len(winners) != 1 or len(losers) != processes - 1:
        return Result(name, False, _statuses(results))
    alive = _dead(target, [first, winners[0].get("refresh_token", "")])
    if alive:
        return Result(name, False, "the session survived the replays")
    return Result(name, True, f"1 x 200, {processes - 1} x 400, session revoked")


def _chain(target: Target, login: Login, steps: int) -> list[str]:
    tokens = [login()["refresh_token"]]
    for _ in range(steps):
        status, body = target.refresh(tokens[-1])
        if status != 200 or not isinstance(body.get("refresh_token"), str):
            raise Broken(f"a plain refresh answered {status} {body.get('error', '')}".rstrip())
        tokens.append(body["refresh_token"])
    return tokens


def check_replay(target: Target, login: Login, _processes: int) -> Result:
    """A rotated token older than the immediate predecessor kills the whole session."""
    name = "replay of an old token"
    t0, _t1, t2 = _chain(target, login, 2)
    status, body = target.refresh(t0)
    if status != 400 or body.get("error") != "invalid_grant":
        return Result(name, False, f"the replay answered {status}")
    if _dead(target, [t2]):
        return Result(name, False, "the session's current token still refreshes")
    return Result(name, True, "400 invalid_grant, session revoked")


def check_replay_racing_refresh(target: Target, login: Login, processes: int,
                                rounds: int = 5) -> Result:
    """A replay racing the legitimate refresh: the replay fails and nothing survives."""
    name = f"replay racing refresh ({rounds} rounds)"
    for _ in range(rounds):
        t0, _t1, t2 = _chain(target, login, 2)
        results = _race(target, [(target.refresh, (t0,)), (target.refresh, (t2,))])
        if results[0][0] == 200:
            return Result(name, False, "the replayed token was accepted")
        leftovers = [t2] + [b.get("refresh_token", "") for s, b in results if s == 200]
        if _dead(target, leftovers):
            return Result(name, False, "a token of the replayed session still refreshes")
    return Result(name, True, "replay rejected, session revoked every round")


def check_revoke_racing_refresh(target: Target, login: Login, processes: int,
                                rounds: int = 5) -> Result:
    """Revoking a token while it is being refreshed leaves no live successor behind."""
    racers = max(1, min(processes, 8) - 1)
    name = f"revoke racing {racers} refreshes ({rounds} rounds)"
    for _ in range(rounds):
        t0 = login()["refresh_token"]
        results = _race(target,
                        [(target.revoke, (t0,))] + [(target.refresh, (t0,))] * racers)
        if results[0][0] != 200:
            return Result(name, False, f"revoke answered {results[0][0]}")
        minted = [b.get("refresh_token", "") for s, b in results[1:] if s == 200]
        if _dead(target, [t0] + minted):
            return Result(name, False, "a successor outlived the revocation")
    return Result(name, True, "no successor outlived the revocation")


def check_code_single_use(target: Target, login: Login, processes: int) -> Result:
    """SPEC §13.3: one authorization code redeemed by N parallel requests gives exactly one
    token response; the others are replays, which revoke the session it started."""
    name = f"{processes} parallel redemptions of one authorization code"
    signed_in = login.authorization_code()
    if signed_in is None:
        return Result(name, True, "skipped: no code without a second factor (or no "
                                  "authorization challenge endpoint)")
    code, verifier = signed_in
    fields = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    results = _race(target, [(target.post, ("token", fields))] * processes)
    winners = [body for status, body in results if status == 200]
    losers = [body for status, body in results
              if status == 400 and body.get("error") == "invalid_grant"]
    if len(winners) != 1 or len(losers) != processes - 1:
        return Result(name, False, _statuses(results))
    if _dead(target, [winners[0].get("refresh_token", "")]):
        return Result(name, False, "the session of the replayed code survived")
    return Result(name, True, f"1 x 200, {processes - 1} x 400, session revoked")


Check = Callable[[Target, Login, int], Result]


def checks_for(reuse_interval: int) -> list[Check]:
    """Every check, the first one by the tenant's mode (0: strict)."""
    return [check_strict if reuse_interval == 0 else check_duplicates,
            check_replay, check_replay_racing_refresh, check_revoke_racing_refresh,
            check_code_single_use]


def run_check(check: Check, target: Target, login: Login, processes: int) -> Result:
    """One check's result; a guarantee broken before its main step is a failed check too."""
    try:
        return check(target, login, processes)
    except Broken as exc:
        return Result(check.__name__.removeprefix("check_"), False, str(exc))
