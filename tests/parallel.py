"""Run a function in N processes released together by a multiprocessing.Barrier: the racer
of `baton-conformance` (app.conformance.racer), one implementation for both."""
from __future__ import annotations

from typing import Any
from typing import Callable

from app.conformance.racer import CONTEXT
from app.conformance.racer import race

__all__ = ["CONTEXT", "run_together"]


def run_together(target: Callable, args_list: list[tuple], timeout: float = 120) -> list[Any]:
    """target(*args) for each args, at once; results in the order of args_list. A client
    that raised (RaceFailed, with its traceback) or hung (RaceTimeout) fails the test."""
    return race([(target, args) for args in args_list], timeout)
