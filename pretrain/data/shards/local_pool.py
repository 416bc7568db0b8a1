"""Shard tasks on local worker processes.

Forked where the platform allows: spawned workers re-import the caller's `__main__`, which breaks
builds started from `python -c`, stdin or an unguarded script. The parent holds no locks a worker
needs (logging re-initialises its locks after fork; workers never touch the progress bar).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Callable, Iterator, Sequence, TypeVar

Plan = TypeVar("Plan")
Result = TypeVar("Result")


def run_in_processes(task: Callable[[Plan, object], Result], plans: Sequence[Plan], config: object,
                     workers: int) -> Iterator[Result]:
    """Yield results as tasks finish; the first failure cancels what has not started and re-raises."""
    if not plans:
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(max_workers=min(workers, len(plans)), mp_context=context) as pool:
        futures = [pool.submit(task, plan, config) for plan in plans]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
