"""Work units (shards to build, shards to embed) on local worker processes.

Forked where the platform allows: spawned workers re-import the caller's `__main__`, which breaks
builds started from `python -c`, stdin or an unguarded script. The parent holds no locks a worker
needs (logging re-initialises its locks after fork; workers never touch the progress bar).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

Plan = TypeVar("Plan")
Result = TypeVar("Result")


def pool_context():
    """Fork where available (see the module docstring), else spawn."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def _die_with_parent() -> None:
    """Linux: a worker is killed when the build process dies (even by SIGKILL), so a killed build
    leaves no orphan still writing shards while the user reruns it."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def run_in_processes(
    task: Callable[[Plan, object], Result],
    plans: Sequence[Plan],
    config: object,
    workers: int,
    spawn: bool = False,
) -> Iterator[Result]:
    """Yield results as tasks finish; the first failure cancels what has not started and re-raises.
    The one local pool of work units (shard building, feature extraction); `spawn` for workers that
    use CUDA, which cannot run in a forked child."""
    if not plans:
        return
    context = multiprocessing.get_context("spawn") if spawn else pool_context()
    with ProcessPoolExecutor(
        max_workers=min(workers, len(plans)), mp_context=context, initializer=_die_with_parent
    ) as pool:
        futures = [pool.submit(task, plan, config) for plan in plans]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


RemoteRunner = Callable[[Callable, Sequence, object], Iterator]
"""Runs `task(unit, config)` for every unit elsewhere (Ray tasks, from pretrain.distributed)."""


def run_units(
    task: Callable[[Plan, object], Result],
    units: Sequence[Plan],
    config: object,
    workers: int = 1,
    remote: RemoteRunner | None = None,
    spawn: bool = False,
) -> Iterator[Result]:
    """The one runner of work units (shards to build, shards to embed): through `remote`, in
    `workers` local processes (killed with their parent, cancelled on the first failure), or in
    this process. Results come as units finish; callers skip the units an earlier run finished
    (their part records) and pass only the rest, which is what makes both resumable."""
    if remote is not None:
        return remote(task, units, config)
    if workers > 1 and len(units) > 1:
        return run_in_processes(task, units, config, workers, spawn)
    return (task(unit, config) for unit in units)
