"""The racer shared by `baton-conformance` and the suite's parallel clients
(app.conformance.racer, tests/parallel.py): released together, results in order, every
failure reported, no process left behind."""
from __future__ import annotations

import os
import threading
import time

import pytest

from app.conformance.racer import CONTEXT
from app.conformance.racer import RaceFailed
from app.conformance.racer import RaceTimeout
from app.conformance.racer import race
from tests.parallel import run_together

N = 6


def _meet(rendezvous, index: int) -> tuple[int, int]:
    # Passes only if all N calls are running at the same time: one after the other, the
    # first would wait here alone and the barrier would break.
    rendezvous.wait(30)
    return index, os.getpid()


def test_calls_run_at_once_in_processes_of_their_own_results_in_order() -> None:
    rendezvous = CONTEXT.Barrier(N)
    results = race([(_meet, (rendezvous, i)) for i in range(N)], timeout=60)
    assert [index for index, _ in results] == list(range(N))
    pids = {pid for _, pid in results}
    assert len(pids) == N and os.getpid() not in pids
    assert CONTEXT.active_children() == []


def test_run_together_is_the_racer() -> None:
    rendezvous = CONTEXT.Barrier(N)
    results = run_together(_meet, [(rendezvous, i) for i in range(N)], timeout=60)
    assert [index for index, _ in results] == list(range(N))


def _fail_on(index: int, bad: int) -> int:
    if index == bad:
        raise ValueError(f"client {index} gave up")
    return index


def test_a_failed_call_is_reported_with_its_exception_and_traceback() -> None:
    with pytest.raises(RaceFailed) as caught:
        race([(_fail_on, (i, 2)) for i in range(4)], timeout=60)
    failure = caught.value
    assert failure.index == 2
    assert failure.summary == "ValueError: client 2 gave up"
    assert isinstance(failure.error, ValueError)
    assert "in _fail_on" in failure.traceback and "client 2 gave up" in failure.traceback
    assert "racing process 2 failed" in str(failure)
    assert CONTEXT.active_children() == []


class Unpicklable(Exception):
    def __init__(self, reason: str, lock: threading.Lock) -> None:
        super().__init__(reason)
        self.lock = lock


def _raise_unpicklable() -> None:
    raise Unpicklable("holds a lock", threading.Lock())


def _return_unpicklable() -> threading.Lock:
    return threading.Lock()


def test_what_cannot_travel_between_processes_is_still_reported() -> None:
    with pytest.raises(RaceFailed) as caught:
        race([(_raise_unpicklable, ())] * 2, timeout=60)
    assert caught.value.error is None  # described, not carried
    assert caught.value.summary == "Unpicklable: holds a lock"
    with pytest.raises(RaceFailed) as caught:
        race([(_return_unpicklable, ())] * 2, timeout=60)
    assert "cannot be sent back" in caught.value.summary


def _hang_on(index: int, slow: int) -> int:
    if index == slow:
        time.sleep(600)
    return index


def test_a_call_that_never_answers_is_a_timeout_and_is_stopped() -> None:
    with pytest.raises(RaceTimeout) as caught:
        race([(_hang_on, (i, 1)) for i in range(3)], timeout=3)
    assert (caught.value.finished, caught.value.total) == (2, 3)
    assert CONTEXT.active_children() == []


def _die() -> None:
    os._exit(7)


def test_a_process_that_dies_without_answering_is_a_timeout() -> None:
    with pytest.raises(RaceTimeout) as caught:
        race([(_die, ())] * 2, timeout=2)
    assert caught.value.finished == 0
