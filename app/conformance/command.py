"""The command line of `baton-conformance` (app.conformance): parse, log in once, run every
check, print the table; exit 0, 1 or 2."""
from __future__ import annotations

import argparse
import sys
import urllib.parse
from typing import NoReturn
from typing import Sequence
from typing import TextIO

from app.conformance.checks import ConnectionProblem
from app.conformance.checks import Login
from app.conformance.checks import Result
from app.conformance.checks import Target
from app.conformance.checks import checks_for
from app.conformance.checks import pkce_pair
from app.conformance.checks import run_check

EXIT_OK, EXIT_BROKEN, EXIT_USAGE = 0, 1, 2
PROG = "baton-conformance"
PASSWORD_REQUIRED = "--password-stdin is required: a password is never an argument"


class UsageProblem(Exception):
    """A mistake in the command line or the credentials."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that a missing --password-stdin is one line saying why."""

    def error(self, message: str) -> NoReturn:
        if message == "the following arguments are required: --password-stdin":
            self.exit(EXIT_USAGE, f"{self.prog}: {PASSWORD_REQUIRED}\n")
        super().error(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Race a live Baton deployment and check the rotation guarantees "
                    "(and that an authorization code is single use).")
    parser.add_argument("url", help="base URL of the deployment, e.g. https://auth.example.com")
    required = parser.add_argument_group("required options")
    required.add_argument("--tenant", required=True, help="tenant slug")
    required.add_argument("--username", required=True, help="a test user of that tenant")
    required.add_argument("--password-stdin", action="store_true", required=True,
                          help="read the user's password from the first line of stdin "
                               "(a password is never an argument)")
    parser.add_argument("--processes", type=int, default=16,
                        help="parallel clients racing one token (default 16)")
    parser.add_argument("--reuse-interval", type=int, default=10,
                        help="the tenant's reuse interval in seconds; 0 checks strict mode")
    parser.add_argument("--timeout", type=float, default=30, help="per request, seconds")
    return parser


class _Credentials(Login):
    """The test user's password, used over HTTP only: the password grant, or where the
    tenant turned it off, the challenge flow and its code (SPEC §13.3)."""

    def __init__(self, target: Target, username: str, password: str) -> None:
        self.target, self.username, self.password = target, username, password

    def __call__(self) -> dict:
        status, body = self.target.post("token", {
            "grant_type": "password", "username": self.username, "password": self.password})
        if status == 400 and "second factor" in body.get("error_description", ""):
            raise UsageProblem("the test user has a second factor: use one without")
        if status == 400 and body.get("error") == "unsupported_grant_type":
            signed_in = self.authorization_code()  # the tenant turned the password grant off
            if signed_in is None:
                raise UsageProblem("the tenant offers neither the password grant nor a sign-in "
                                   "without a second factor for this user")
            status, body = self.target.post("token", {
                "grant_type": "authorization_code", "code": signed_in[0],
                "code_verifier": signed_in[1]})
        if status == 200 and isinstance(body.get("refresh_token"), str):
            return body
        raise self._problem("login", status, body)

    def authorization_code(self) -> tuple[str, str] | None:
        verifier, challenge = pkce_pair()
        status, body = self.target.post("authorize-challenge", {
            "username": self.username, "password": self.password, "code_challenge": challenge,
            "code_challenge_method": "S256"})
        if status == 200 and isinstance(body.get("authorization_code"), str):
            return body["authorization_code"], verifier
        if status in (400, 404, 405) and body.get("error") in (
                "invalid_grant", "invalid_request", "unsupported_grant_type"):
            raise self._problem("sign-in", status, body)
        # A second factor needed, or a deployment without the challenge endpoint (before
        # SPEC §13): there is no code to race.
        return None

    @staticmethod
    def _problem(what: str, status: int, body: dict) -> Exception:
        if status in (400, 404):
            return UsageProblem(f"{what} failed ({status} {body.get('error', '')}): "
                                "check the URL, tenant, username and password")
        return ConnectionProblem(f"{what} answered {status} {body.get('error', '')}".rstrip())


def run(argv: Sequence[str] | None = None, stdin: TextIO | None = None,
        out: TextIO | None = None) -> int:
    """The whole command; returns the exit code."""
    out = out or sys.stdout
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse printed its usage error, or the help
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        target, login = _setup(args, stdin or sys.stdin)
        login()  # credentials and reachability, before racing anything
        results = [run_check(check, target, login, args.processes)
                   for check in checks_for(args.reuse_interval)]
    except (UsageProblem, ConnectionProblem, RuntimeError) as exc:
        # RuntimeError: a racing process failed unexpectedly; nothing was concluded.
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _print_table(results, out)
    return EXIT_BROKEN if any(not r.ok for r in results) else EXIT_OK


def _print_table(results: list[Result], out: TextIO) -> None:
    width = max(len(r.name) for r in results)
    for result in results:
        print(f"{result.name:<{width}}  {'ok' if result.ok else 'BROKEN':<6}  {result.detail}",
              file=out)
    held = sum(r.ok for r in results)
    print(f"{held} of {len(results)} checks held", file=out)


def _setup(args: argparse.Namespace, stdin: TextIO) -> tuple[Target, Login]:
    parsed = urllib.parse.urlsplit(args.url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageProblem(f"URL must start with http:// or https://, got {args.url!r}")
    if not 2 <= args.processes <= 256:
        raise UsageProblem("--processes must be between 2 and 256")
    if not 0 <= args.reuse_interval <= 300:
        raise UsageProblem("--reuse-interval must be between 0 and 300")
    password = stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageProblem("no password on stdin")
    target = Target(args.url.rstrip("/"), args.tenant, args.timeout)
    return target, _Credentials(target, args.username, password)


def main() -> None:
    sys.exit(run())
