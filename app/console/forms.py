"""Strict parsing of what a console page receives: query strings, form fields, ids in paths.

Anything malformed is a 400 page naming the field (a repeated or unknown parameter, NUL, an
overlong value, a number out of range); an id that cannot name anything is a 404 page.
"""
from __future__ import annotations

import re

from flask import request

from app.console.pages import bad_input
from app.console.pages import not_found

MAX_VALUE_LENGTH = 1024
_USER_ID = re.compile(r"[1-9][0-9]{0,17}")
_EVENT_ID = re.compile(r"(0|[1-9][0-9]{0,17})")


def _checked(name: str, value: str) -> str:
    if "\x00" in value or len(value) > MAX_VALUE_LENGTH:
        raise bad_input(f"{name} must be at most {MAX_VALUE_LENGTH} characters, no NUL.")
    return value


def query(allowed: tuple[str, ...]) -> dict[str, str]:
    """The query string as single values; an unknown or repeated parameter is refused."""
    args: dict[str, str] = {}
    for name, values in request.args.lists():
        if name not in allowed:
            raise bad_input(f"{name[:64]} is not a parameter of this page "
                            f"(known: {', '.join(allowed)}).")
        if len(values) > 1:
            raise bad_input(f"{name} is repeated.")
        args[name] = _checked(name, values[0])
    return args


def field(name: str, *, strip: bool = False) -> str:
    """A form field sent exactly once ("" when sent empty)."""
    values = request.form.getlist(name)
    if len(values) != 1:
        raise bad_input(f"{name} is {'missing' if not values else 'repeated'}.")
    value = _checked(name, values[0])
    return value.strip() if strip else value


def user_id(raw: str) -> int:
    """A user id from the path; 404 for anything that cannot be one."""
    if not _USER_ID.fullmatch(raw):
        raise not_found("There is no such user.")
    return int(raw)


def event_id(args: dict[str, str], name: str) -> int | None:
    """An event id from the query (`after`), or None when absent or empty."""
    raw = args.get(name, "")
    if not raw:
        return None
    if not _EVENT_ID.fullmatch(raw) or int(raw) >= 2**63:
        raise bad_input(f"{name} must be an event id (a number).")
    return int(raw)
