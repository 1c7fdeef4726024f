"""What every operator command shares: one `Error:` line for a mistake, never a traceback;
the clock; and the option types and password prompt of several groups."""
from __future__ import annotations

import functools
import logging
import sys
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from typing import Callable

import click
from flask.cli import AppGroup
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.database.faults import describe_database_problem
from app.database.faults import is_transient
from app.services import unit_of_work
from app.services.errors import DatabaseUnavailable
from app.services.errors import ServiceError


class BatonGroup(AppGroup):
    """A command group whose mistakes print one `Error:` line, never usage or a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            raise click.ClickException(exc.format_message()) from None


def service_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a service's refusal (app.services.errors) into `Error: <message>` and exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # The Error line says why the database could not be used; the unit of work's log
        # line about the same outage would be a second line (a JSON one) on stderr.
        unit_of_work.log.addFilter(_drop)
        try:
            return func(*args, **kwargs)
        except DatabaseUnavailable as exc:
            # An operator needs the reason HTTP clients are not told (refused, no such
            # database, authentication failed): it is on the exception's context.
            reason = describe_database_problem(exc.__context__) or exc.message
            raise click.ClickException(reason) from None
        except ServiceError as exc:
            raise click.ClickException(exc.message) from None
        except (DBAPIError, PoolTimeout) as exc:
            if not is_transient(exc):
                raise
            raise click.ClickException(describe_database_problem(exc) or str(exc)) from None
        finally:
            unit_of_work.log.removeFilter(_drop)

    return wrapper


def _drop(record: logging.LogRecord) -> bool:
    return False


def keep_outage_log() -> None:
    """For a command that waits out database outages rather than failing on the first
    (`events deliver` without --once): its log is then the only trace of one."""
    unit_of_work.log.removeFilter(_drop)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Duration(click.ParamType):
    """`30s`, `15m`, `12h`, `7d` as a timedelta; a bare number is refused (7 is not 7 days)."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> timedelta:
        if isinstance(value, timedelta):
            return value
        text = str(value).strip().lower()
        number, unit = text[:-1], text[-1:]
        if number.isdigit() and unit in self.UNITS:
            return timedelta(seconds=int(number) * self.UNITS[unit])
        if text.isdigit():
            self.fail(f"{value!r} has no unit: write {text}s, {text}m, {text}h or {text}d",
                      param, ctx)
        self.fail(f"{value!r} is not a duration like 30s, 15m, 12h or 7d", param, ctx)


password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from standard input.")


def stdin_is_terminal() -> bool:
    return sys.stdin.isatty()


def read_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or prompted twice without echo."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not stdin_is_terminal():
        # getpass would fall back to an echoing prompt with a GetPassWarning.
        raise click.ClickException("standard input is not a terminal: pass --password-stdin "
                                   "to read the password from it")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, default="",
                        show_default=False)
