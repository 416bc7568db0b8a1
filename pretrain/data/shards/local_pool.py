"""Shard tasks on local worker processes (spawned, so no state or threads leak in from the parent)."""

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
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(plans)), mp_context=context) as pool:
        futures = [pool.submit(task, plan, config) for plan in plans]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()
