"""Run N calls in N processes released together by a Barrier: the racer of
`baton-conformance` and of the test suite's parallel clients (tests/parallel.py).

Each call runs in its own forked process and waits at a `multiprocessing.Barrier`, so all
of them start at once; the results come back in the order of the calls. A call that raises
is reported with its traceback (RaceFailed), a call that never answers as RaceTimeout;
either way every process is gone when `race` returns or raises (the others are stopped at
once: nothing more would be read).
"""
from __future__ import annotations

import multiprocessing as mp
import pickle
import queue
import time
import traceback
from typing import Any
from typing import Callable
from typing import Sequence

# fork: a child inherits the caller's imports and state (a test's app, its environment).
CONTEXT = mp.get_context("fork")
BARRIER_WAIT_S = 60  # for every process to start
JOIN_GRACE_S = 10  # for the processes to exit once every result is in

Call = tuple[Callable[..., Any], tuple]


class RaceFailed(Exception):
    """A racing call raised. `error` is its exception when it survives the trip between
    processes, else None; `summary` is one line, `traceback` the child's whole traceback."""

    def __init__(self, index: int, summary: str, traceback_text: str,
                 error: BaseException | None) -> None:
        super().__init__(f"racing process {index} failed:\n{traceback_text}")
        self.index = index
        self.summary = summary
        self.traceback = traceback_text
        self.error = error


class RaceTimeout(Exception):
    """Some racing calls did not answer in time."""

    def __init__(self, finished: int, total: int, timeout: float) -> None:
        super().__init__(f"only {finished} of {total} racing processes answered "
                         f"(waited {timeout:g} s for the next)")
        self.finished = finished
        self.total = total


def _portable(value: Any) -> bool:
    """Whether value makes the trip to the parent (a queue drops what it cannot pickle)."""
    try:
        pickle.loads(pickle.dumps(value))
    except Exception:
        return False
    return True


def _worker(index: int, call: Callable[..., Any], args: tuple, barrier: Any,
            results: Any) -> None:
    try:
        barrier.wait(BARRIER_WAIT_S)
        value = call(*args)
        if not _portable(value):
            raise TypeError(f"the result of {call.__name__} cannot be sent back: "
                            f"{type(value).__name__} does not pickle")
    except BaseException as exc:  # everything is reported; the parent decides
        report = (f"{type(exc).__name__}: {exc}", traceback.format_exc(),
                  exc if _portable(exc) else None)
        results.put((index, False, report))
    else:
        results.put((index, True, value))


def race(calls: Sequence[Call], timeout: float) -> list[Any]:
    """Run each (function, args) in its own process, all released at once by a Barrier.

    Returns the results in the order of `calls`. Raises RaceFailed for the first call
    that raised, RaceTimeout when no next result arrives within `timeout` seconds.
    """
    barrier = CONTEXT.Barrier(len(calls))
    results = CONTEXT.Queue()
    procs = [CONTEXT.Process(target=_worker, args=(i, call, args, barrier, results),
                             daemon=True)
             for i, (call, args) in enumerate(calls)]
    for proc in procs:
        proc.start()
    collected: dict[int, Any] = {}
    try:
        for _ in procs:
            try:
                index, ok, value = results.get(timeout=timeout)
            except queue.Empty:
                raise RaceTimeout(len(collected), len(procs), timeout) from None
            if not ok:
                raise RaceFailed(index, *value)
            collected[index] = value
    except BaseException:
        _reap(procs, grace_s=0)  # nothing more will be read: stop the others now
        raise
    _reap(procs, grace_s=JOIN_GRACE_S)
    return [collected[i] for i in range(len(procs))]


def _reap(procs: list[Any], grace_s: float) -> None:
    """Wait up to grace_s in all for the processes to exit, then kill what is left."""
    deadline = time.monotonic() + grace_s
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
