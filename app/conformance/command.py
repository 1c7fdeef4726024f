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
        description="Race a live Baton deployment and check the rotation guarantees.")
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


def _login_function(target: Target, username: str, password: str) -> Login:
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
    return target, _login_function(target, args.username, password)


def main() -> None:
    sys.exit(run())
