"""What every operator command shares: one `Error:` line for a mistake, never a traceback."""
from __future__ import annotations

import functools
from datetime import datetime
from datetime import timezone
from typing import Any
from typing import Callable

import click
from flask.cli import AppGroup
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app.database.faults import describe_database_problem
from app.database.faults import is_transient
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

    return wrapper


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
