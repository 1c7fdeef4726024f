"""Concurrency for tests: a function in N processes released together by a
multiprocessing.Barrier (the racer of `baton-conformance`, app.conformance.racer: one
implementation for both), and two transactions forced into one interleaving."""
from __future__ import annotations

import threading
import time
from typing import Any
from typing import Callable

from app.conformance.racer import CONTEXT
from app.conformance.racer import race
from app.extensions import db

__all__ = ["CONTEXT", "run_together"]


def run_together(target: Callable, args_list: list[tuple], timeout: float = 120) -> list[Any]:
    """target(*args) for each args, at once; results in the order of args_list. A client
    that raised (RaceFailed, with its traceback) or hung (RaceTimeout) fails the test."""
    return race([(target, args) for args in args_list], timeout)


def interleave(app, monkeypatch, owner, held: str, first, second) -> dict[str, object]:
    """Run `first` in a thread until it calls `owner.held`, start `second` (which then waits
    for a lock `first` holds), let `first` go on; what each returned or raised."""
    reached, go_on = threading.Event(), threading.Event()
    real = getattr(owner, held)

    def holding(*args, **kwargs):
        reached.set()
        go_on.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, held, holding)
    results: dict[str, object] = {}

    def run(name, call):
        with app.app_context():
            try:
                results[name] = call()
            except Exception as exc:  # noqa: BLE001 - the test reports what each side got
                results[name] = exc
            db.session.remove()

    threads = [threading.Thread(target=run, args=("first", first)),
               threading.Thread(target=run, args=("second", second))]
    threads[0].start()
    assert reached.wait(10)
    threads[1].start()
    time.sleep(0.5)  # the second is now waiting for the lock
    go_on.set()
    for thread in threads:
        thread.join(20)
    return results
