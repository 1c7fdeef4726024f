"""`baton-conformance URL --tenant T --username U --password-stdin` (SPEC §12).

Races a live deployment from outside, over HTTP only, the way an operator checks it after
putting Baton behind a new proxy, pooler or database topology: N processes refresh one
token at once, a stolen token is replayed, a replay races the legitimate refresh, a revoke
races refreshes. Prints one line per check. Exit 0 if every guarantee held, 1 if one
broke, 2 for usage or connection errors. Needs no server settings (no SECRET_KEY, no
DATABASE_URL) and never prints a token or the password.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any
from typing import Callable
from typing import Sequence
from typing import TextIO

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2
_CTX = mp.get_context("fork")


class ConnectionProblem(Exception):
    """The deployment could not be reached or answered something that is not JSON."""


class UsageProblem(Exception):
    """A mistake in the command line or the credentials."""


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


# --- racing in processes ---------------------------------------------------------------

def _worker(index: int, call: Callable, args: tuple, barrier: Any, results: Any) -> None:
    try:
        barrier.wait(60)
        results.put((index, "ok", call(*args)))
    except ConnectionProblem as exc:
        results.put((index, "connection", str(exc)))
    except BaseException as exc:  # reported to the parent, which decides
        results.put((index, "error", f"{type(exc).__name__}: {exc}"))


def race(calls: Sequence[tuple[Callable, tuple]], timeout: float) -> list:
    """Run every call in its own process, released together; results in order."""
    barrier = _CTX.Barrier(len(calls))
    results = _CTX.Queue()
    procs = [_CTX.Process(target=_worker, args=(i, call, args, barrier, results), daemon=True)
             for i, (call, args) in enumerate(calls)]
    for proc in procs:
        proc.start()
    collected: dict[int, object] = {}
    try:
        for _ in procs:
            index, kind, value = results.get(timeout=timeout + 60)
            if kind == "connection":
                raise ConnectionProblem(value)
            if kind == "error":
                raise RuntimeError(value)
            collected[index] = value
    except queue.Empty:
        raise ConnectionProblem(f"only {len(collected)} of {len(procs)} requests answered") \
            from None
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
    return [collected[i] for i in range(len(procs))]


# --- the checks --------------------------------------------------------------------------

def _statuses(results: list[tuple[int, dict]]) -> str:
    counts: dict[str, int] = {}
    for status, body in results:
        key = f"{status} {body.get('error', '')}".strip()
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{n} x {key}" for key, n in sorted(counts.items()))


def _dead(target: Target, tokens: list[str]) -> list[str]:
    """The tokens that still refresh (each should have died with its session)."""
    return [t for t in tokens if target.refresh(t)[0] == 200]


def check_duplicates(target: Target, login: Callable[[], dict], processes: int) -> Result:
    """Reuse interval: N simultaneous refreshes of one token all get the same pair."""
    name = f"{processes} parallel refreshes of one token"
    first = login()["refresh_token"]
    results = race([(target.refresh, (first,))] * processes, target.timeout)
    ok = [body for status, body in results if status == 200]
    successors = {body.get("refresh_token") for body in ok}
    access = {body.get("access_token") for body in ok}
    if len(ok) != processes or len(successors) != 1 or len(access) != 1:
        return Result(name, False, f"{_statuses(results)}; {len(successors)} distinct "
                                   f"successors, {len(access)} distinct access tokens")
    if target.refresh(successors.pop())[0] != 200:
        return Result(name, False, "the shared successor does not refresh")
    return Result(name, True, f"{processes} x 200, one successor, one access token")


def check_strict(target: Target, login: Callable[[], dict], processes: int) -> Result:
    """Strict mode: of N simultaneous refreshes exactly one wins and the session dies."""
    name = f"{processes} parallel refreshes, strict mode"
    first = login()["refresh_token"]
    results = race([(target.refresh, (first,))] * processes, target.timeout)
    winners = [body for status, body in results if status == 200]
    losers = [body for status, body in results if status == 400
              and body.get("error") == "invalid_grant"]
    if len(winners) != 1 or len(losers) != processes - 1:
        return Result(name, False, _statuses(results))
    alive = _dead(target, [first, winners[0].get("refresh_token", "")])
    if alive:
        return Result(name, False, "the session survived the replays")
    return Result(name, True, f"1 x 200, {processes - 1} x 400, session revoked")


def _chain(target: Target, login: Callable[[], dict], steps: int) -> list[str]:
    tokens = [login()["refresh_token"]]
    for _ in range(steps):
        status, body = target.refresh(tokens[-1])
        if status != 200 or not isinstance(body.get("refresh_token"), str):
            raise _Broken(f"a plain refresh answered {status} {body.get('error', '')}".rstrip())
        tokens.append(body["refresh_token"])
    return tokens


class _Broken(Exception):
    """A check found a broken guarantee before its main step."""


def check_replay(target: Target, login: Callable[[], dict], _processes: int) -> Result:
    """A rotated token older than the immediate predecessor kills the whole session."""
    name = "replay of an old token"
    t0, _t1, t2 = _chain(target, login, 2)
    status, body = target.refresh(t0)
    if status != 400 or body.get("error") != "invalid_grant":
        return Result(name, False, f"the replay answered {status}")
    if _dead(target, [t2]):
        return Result(name, False, "the session's current token still refreshes")
    return Result(name, True, "400 invalid_grant, session revoked")


def check_replay_racing_refresh(target: Target, login: Callable[[], dict], processes: int,
                                rounds: int = 5) -> Result:
    """A replay racing the legitimate refresh: the replay fails and nothing survives."""
    name = f"replay racing refresh ({rounds} rounds)"
    for _ in range(rounds):
        t0, _t1, t2 = _chain(target, login, 2)
        results = race([(target.refresh, (t0,)), (target.refresh, (t2,))], target.timeout)
        if results[0][0] == 200:
            return Result(name, False, "the replayed token was accepted")
        leftovers = [t2] + [b.get("refresh_token", "") for s, b in results if s == 200]
        if _dead(target, leftovers):
            return Result(name, False, "a token of the replayed session still refreshes")
    return Result(name, True, "replay rejected, session revoked every round")


def check_revoke_racing_refresh(target: Target, login: Callable[[], dict], processes: int,
                                rounds: int = 5) -> Result:
    """Revoking a token while it is being refreshed leaves no live successor behind."""
    racers = max(1, min(processes, 8) - 1)
    name = f"revoke racing {racers} refreshes ({rounds} rounds)"
    for _ in range(rounds):
        t0 = login()["refresh_token"]
        results = race([(target.revoke, (t0,))] + [(target.refresh, (t0,))] * racers,
                       target.timeout)
        if results[0][0] != 200:
            return Result(name, False, f"revoke answered {results[0][0]}")
        minted = [b.get("refresh_token", "") for s, b in results[1:] if s == 200]
        if _dead(target, [t0] + minted):
            return Result(name, False, "a successor outlived the revocation")
    return Result(name, True, "no successor outlived the revocation")


# --- command line ----------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="baton-conformance",
        description="Race a live Baton deployment and check the rotation guarantees.")
    parser.add_argument("url", help="base URL of the deployment, e.g. https://auth.example.com")
    parser.add_argument("--tenant", required=True, help="tenant slug")
    parser.add_argument("--username", required=True, help="a test user of that tenant")
    parser.add_argument("--password-stdin", action="store_true",
                        help="read the user's password from the first line of stdin")
    parser.add_argument("--processes", type=int, default=16,
                        help="parallel clients racing one token (default 16)")
    parser.add_argument("--reuse-interval", type=int, default=10,
                        help="the tenant's reuse interval in seconds; 0 checks strict mode")
    parser.add_argument("--timeout", type=float, default=30, help="per request, seconds")
    return parser


def _login_function(target: Target, username: str, password: str) -> Callable[[], dict]:
    def login() -> dict:
        status, body = target.post("token", {"grant_type": "password", "username": username,
                                             "password": password})
        if status == 200 and isinstance(body.get("refresh_token"), str):
            return body
        if status in (400, 404):
            raise UsageProblem(f"login failed ({status} {body.get('error', '')}): "
                               "check the URL, tenant, username and password")
        raise ConnectionProblem(f"login answered {status} {body.get('error', '')}".rstrip())
    return login


def run(argv: Sequence[str] | None = None, stdin: TextIO | None = None,
        out: TextIO | None = None) -> int:
    """The whole command; returns the exit code."""
    out = out or sys.stdout
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed its one line of usage error
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        target, login = _setup(args, stdin or sys.stdin)
        login()  # credentials and reachability, before racing anything
        checks = [check_strict if args.reuse_interval == 0 else check_duplicates,
                  check_replay, check_replay_racing_refresh, check_revoke_racing_refresh]
        results = []
        for check in checks:
            try:
                results.append(check(target, login, args.processes))
            except _Broken as exc:
                results.append(Result(check.__name__.removeprefix("check_"), False, str(exc)))
    except (UsageProblem, ConnectionProblem, RuntimeError) as exc:
        # RuntimeError: a racing process failed unexpectedly; nothing was concluded.
        print(f"baton-conformance: {exc}", file=sys.stderr)
        return EXIT_USAGE
    width = max(len(r.name) for r in results)
    for result in results:
        print(f"{result.name:<{width}}  {'ok' if result.ok else 'BROKEN':<6}  {result.detail}",
              file=out)
    broken = sum(not r.ok for r in results)
    print(f"{len(results) - broken} of {len(results)} checks held", file=out)
    return EXIT_BROKEN if broken else EXIT_OK


def _setup(args: argparse.Namespace,
           stdin: TextIO) -> tuple[Target, Callable[[], dict]]:
    parsed = urllib.parse.urlsplit(args.url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageProblem(f"URL must start with http:// or https://, got {args.url!r}")
    if not args.password_stdin:
        raise UsageProblem("--password-stdin is required: a password is never an argument")
    if not 2 <= args.processes <= 256:
        raise UsageProblem("--processes must be between 2 and 256")
    if not 0 <= args.reuse_interval <= 300:
        raise UsageProblem("--reuse-interval must be between 0 and 300")
    password = stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageProblem("no password on stdin")
    target = Target(args.url.rstrip("/"), args.tenant, args.timeout)
    return target, _login_function(target, args.username, password)


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
