"""Run a function in N processes released together by a multiprocessing.Barrier."""
from __future__ import annotations

import multiprocessing as mp
import queue
import traceback
from typing import Any
from typing import Callable

_CTX = mp.get_context("fork")


def _worker(index: int, target: Callable, args: tuple, barrier, results) -> None:
    try:
        barrier.wait(60)
        results.put((index, True, target(*args)))
    except BaseException:  # report everything; the parent asserts
        results.put((index, False, traceback.format_exc()))


def run_together(target: Callable, args_list: list[tuple], timeout: float = 120) -> list[Any]:
    """Results in the order of args_list; raises if any process failed or hung."""
    barrier = _CTX.Barrier(len(args_list))
    results = _CTX.Queue()
    procs = [_CTX.Process(target=_worker, args=(i, target, args, barrier, results))
             for i, args in enumerate(args_list)]
    for proc in procs:
        proc.start()
    collected: dict[int, Any] = {}
    try:
        for _ in procs:
            index, ok, value = results.get(timeout=timeout)
            if not ok:
                raise AssertionError(f"client process {index} failed:\n{value}")
            collected[index] = value
    except queue.Empty:
        raise AssertionError(f"only {len(collected)} of {len(procs)} clients finished") from None
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    return [collected[i] for i in range(len(procs))]
