"""`baton-conformance URL --tenant T --username U --password-stdin` (SPEC §12).

Races a live deployment from outside, over HTTP only, the way an operator checks it after
putting Baton behind a new proxy, pooler or database topology: N processes refresh one
token at once, a stolen token is replayed, a replay races the legitimate refresh, a revoke
races refreshes. Prints one line per check. Exit 0 if every guarantee held, 1 if one
broke, 2 for usage or connection errors. Needs no server settings (no SECRET_KEY, no
DATABASE_URL), imports nothing of the server, and never prints a token or the password.

`racer` runs calls in processes released together (the test suite's parallel clients use
it too), `checks` holds the checks, `command` the command line.
"""
from __future__ import annotations

from app.conformance.command import main
from app.conformance.command import run

__all__ = ["main", "run"]
