"""`tubelet shards build --ray`: shard tasks as Ray tasks on a cluster (a local instance when no
address is given). Workers read inputs and write shards at the same paths/URLs as the driver, so
on a multi-node cluster the input must be on shared storage, the output a shared directory or an
object store (s3://, gs://), and every node must have the same Tubelet installed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence

import ray

log = logging.getLogger(__name__)


def _connect(address: str | None) -> bool:
    """Connect (or start a local instance); True if this call did it and must shut it down."""
    if ray.is_initialized():
        return False
    # "local" starts a fresh instance; None would join whichever cluster was started last here.
    ray.init(address=address or "local", log_to_driver=False, configure_logging=False)
    return True


def run_shard_tasks(
    task: Callable,
    plans: Sequence,
    config: object,
    address: str | None = None,
    max_in_flight: int | None = None,
) -> Iterator:
    """Run `task(plan, config)` for each plan as a Ray task; yield results as they finish.

    `max_in_flight` bounds concurrently submitted tasks (default: the cluster's CPU count)."""
    if not plans:
        return
    started_here = _connect(address)
    try:
        remote = ray.remote(num_cpus=1, max_retries=2)(task)
        limit = max_in_flight or max(1, int(ray.cluster_resources().get("CPU", 1)))
        config_ref = ray.put(config)
        pending, queue = [], list(plans)
        while queue or pending:
            while queue and len(pending) < limit:
                pending.append(remote.remote(queue.pop(0), config_ref))
            ready, pending = ray.wait(pending, num_returns=1)
            yield _result(ready[0])
    finally:
        if started_here:
            ray.shutdown()


def ray_shard_runner(address: str | None = None, max_in_flight: int | None = None) -> Callable:
    """The `runner` of `pretrain.data.shards.build_shards` that runs every shard as a Ray task."""
    return functools.partial(run_shard_tasks, address=address, max_in_flight=max_in_flight)


def _result(ref):
    """The task's result; a user error raised inside the task comes back as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, Exception) and type(cause).__module__.startswith("pretrain."):
            raise cause from None
        raise
