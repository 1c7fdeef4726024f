"""Every token and password the tests use, so a final check can look for them in the logs.

Values are appended to a file named in the environment, so forked client processes
register theirs too.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ENV = "BATON_TEST_SECRETS_FILE"
SECRET_FIELDS = ("password", "new_password", "refresh_token", "access_token", "token",
                 # SPEC §13: never logged either
                 "authorization_code", "code", "code_verifier", "auth_session", "secret",
                 "otpauth_uri", "recovery_code",
                 # SPEC §13.5: a WebAuthn challenge (creation options) and what answers one
                 "challenge", "webauthn_response", "credential")
MIN_LENGTH = 8  # shorter test passwords ("pw") would match ordinary words
_paused = False


@contextmanager
def fuzzing() -> Iterator[None]:
    """Generated junk is no secret: a fuzzer's random "password" may well be a phrase that
    also appears in a log line ("user disabled"). Nothing is recorded meanwhile."""
    global _paused
    _paused = True
    try:
        yield
    finally:
        _paused = False


def remember(*values) -> None:
    if _paused:
        return
    path = os.environ.get(ENV)
    found = [v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH]
    if path and found:
        with open(path, "a", encoding="utf-8") as out:
            out.write("".join(json.dumps(v) + "\n" for v in found))


def remember_fields(mapping) -> None:
    if isinstance(mapping, dict):
        remember(*(mapping.get(name) for name in SECRET_FIELDS))
        codes = mapping.get("recovery_codes")
        if isinstance(codes, list):
            remember(*codes)
        options = mapping.get("webauthn")  # the request options of insufficient_authorization
        if isinstance(options, dict):
            remember(options.get("challenge"))


def remember_body(raw) -> None:
    """Secrets in a request body given as a dict, JSON text or form text."""
    if isinstance(raw, dict):
        remember_fields(raw)
        return
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        return
    try:
        remember_fields(json.loads(raw))
    except (ValueError, RecursionError):
        from urllib.parse import parse_qsl

        remember_fields(dict(parse_qsl(raw)))


def recorded() -> set[str]:
    path = os.environ.get(ENV)
    if not path or not Path(path).exists():
        return set()
    return {json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()}
