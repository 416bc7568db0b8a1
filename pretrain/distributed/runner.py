"""Ray Train runner: `cluster.launcher=ray` runs a stage through `TorchTrainer`.

The stage itself is the same Lightning code as a local run (`pretrain.train.entry.run_stage`); Ray
only wraps it from outside by passing an `ExternalLaunch`: a Ray-aware strategy (DDP, or DeepSpeed
ZeRO that also runs on CPU), the `RayLightningEnvironment` plugin (ranks from Ray), a callback
that reports every checkpoint the stage saves to Ray Train (every `trainer.checkpoint_every_steps`
steps, not only at epoch end; with ZeRO, the shards of every rank), and `resume_from`, the
checkpoint `ray.train.get_checkpoint()` hands a restarted worker group. A driver restarted with the
same `trainer.run_name` and `cluster.storage_path` resumes too: Ray Train finds the run in storage.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, ScalingConfig, TrainingFailedError
from ray.train.torch import TorchConfig, TorchTrainer

from pretrain.config import RunConfig, config_from_dict, config_to_dict
from pretrain.errors import TubeletError
from pretrain.train.run_dir import default_run_name

log = logging.getLogger(__name__)

RAY_RESULTS_DIR = "ray_results"
CHECKPOINTS_KEPT = 3
PROCESS_GROUP_TIMEOUT_S = 1800


@dataclass(frozen=True)
class RayRunResult:
    """What a Ray Train run left behind."""

    run_name: str
    run_dir: Path  # the stage's own run directory (trainer.output_dir / run_name)
    storage_path: str  # Ray Train's copy: storage_path / run_name / checkpoint-step-N
    checkpoint_path: str | None  # latest checkpoint Ray Train registered
    metrics: dict[str, Any]  # rank zero's metrics reported with that checkpoint
    reports: list[dict[str, Any]]  # metrics of every checkpoint Ray Train still keeps, by step

    @property
    def global_step(self) -> int:
        return int(self.metrics.get("step", 0))


def run_with_ray(config: RunConfig) -> RayRunResult:
    """Run `config.stage` on Ray Train and wait for it.

    Mistakes the driver can see (no shards, a missing manifest) fail before any worker starts; a
    user error (any `TubeletError`) raised inside the workers comes back as itself; other failures
    (after `cluster.max_failures` restarts) raise RayRunFailed.
    """
    config = with_absolute_paths(with_fixed_run_name(config))
    _check_shards(config)
    _connect(config.cluster.address)
    _warn_if_cluster_too_small(config)
    trainer = TorchTrainer(
        train_loop_per_worker=train_worker,
        train_loop_config={"config": config_to_dict(config)},
        scaling_config=scaling_config_for(config),
        run_config=run_config_for(config),
        torch_config=TorchConfig(
            backend="nccl" if config.cluster.use_gpu else "gloo", timeout_s=PROCESS_GROUP_TIMEOUT_S
        ),
    )
    log.info(
        "Ray Train: %d workers (%s), run %s in %s",
        config.cluster.num_workers,
        config.cluster.placement_strategy,
        config.trainer.run_name,
        storage_path_for(config),
    )
    try:
        result = trainer.fit()
    except TrainingFailedError as error:
        user_error = _user_error_inside(error)
        if user_error is not None:
            raise user_error from None
        raise RayRunFailed(
            f"Ray Train run {config.trainer.run_name!r} failed after "
            f"cluster.max_failures={config.cluster.max_failures} restarts: {error}"
        ) from error
    checkpoint = result.checkpoint
    kept = sorted(
        (dict(metrics) for _, metrics in result.best_checkpoints or []),
        key=lambda metrics: metrics.get("step", 0),
    )
    return RayRunResult(
        run_name=config.trainer.run_name,
        run_dir=Path(config.trainer.output_dir) / config.trainer.run_name,
        storage_path=storage_path_for(config),
        checkpoint_path=checkpoint.path if checkpoint is not None else None,
        metrics=dict(result.metrics or {}),
        reports=kept,
    )


def with_fixed_run_name(config: RunConfig) -> RunConfig:
    """Every worker group of the run, restarts included, must write to the same run directory."""
    if config.trainer.run_name:
        return config
    return replace(config, trainer=replace(config.trainer, run_name=default_run_name(config)))


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """Workers do not share the driver's working directory: resolve relative local paths here."""

    def absolute(path: str | None) -> str | None:
        if not path or "://" in path:
            return path
        return str(Path(path).expanduser().resolve())

    return replace(
        config,
        data=replace(config.data, shards=absolute(config.data.shards) or ""),
        trainer=replace(config.trainer, output_dir=absolute(config.trainer.output_dir)),
        cluster=replace(config.cluster, storage_path=absolute(config.cluster.storage_path)),
    )


def _check_shards(config: RunConfig) -> None:
    from pretrain.data.shards import read_manifest

    read_manifest(config.data.require_shards())  # ShardsError naming the folder when it is not one


def _warn_if_cluster_too_small(config: RunConfig) -> None:
    """An autoscaling cluster may still grow, so too few resources now is a warning, not an error."""
    cluster = config.cluster
    needed = {"CPU": cluster.num_workers * cluster.cpus_per_worker}
    if cluster.use_gpu:
        needed["GPU"] = cluster.num_workers * cluster.gpus_per_worker
    available = ray.cluster_resources()
    short = {k: (v, available.get(k, 0)) for k, v in needed.items() if available.get(k, 0) < v}
    nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
    if short:
        log.warning(
            "cluster.num_workers=%d needs %s but the cluster has %s now; waiting for the autoscaler",
            cluster.num_workers,
            {k: n for k, (n, _) in short.items()},
            {k: have for k, (_, have) in short.items()},
        )
    if cluster.placement_strategy == "STRICT_SPREAD" and nodes < cluster.num_workers:
        log.warning(
            "placement STRICT_SPREAD needs %d nodes; the cluster has %d now", cluster.num_workers, nodes
        )


class RayRunFailed(TubeletError, RuntimeError):
    """The workers kept failing past `cluster.max_failures`; the message says why."""


def _user_error_inside(error: TrainingFailedError) -> TubeletError | None:
    """The user error a worker raised, so the CLI reports it as one line instead of a Ray traceback."""
    failures = getattr(error, "worker_failures", {}) or {}
    for rank in sorted(failures):
        cause = failures[rank]
        cause = getattr(cause, "cause", None) or cause  # RayTaskError wraps the original
        if isinstance(cause, TubeletError):
            return cause
    return None


def scaling_config_for(config: RunConfig) -> ScalingConfig:
    cluster = config.cluster
    resources: dict[str, float] = {"CPU": cluster.cpus_per_worker}
    if cluster.use_gpu:
        resources["GPU"] = cluster.gpus_per_worker
    return ScalingConfig(
        num_workers=cluster.num_workers,
        use_gpu=cluster.use_gpu,
        resources_per_worker=resources,
        placement_strategy=cluster.placement_strategy,
    )


def storage_path_for(config: RunConfig) -> str:
    """`cluster.storage_path`, or `<trainer.output_dir>/ray_results` (fine on one machine only)."""
    if config.cluster.storage_path:
        return config.cluster.storage_path
    return str(Path(config.trainer.output_dir).resolve() / RAY_RESULTS_DIR)


def run_config_for(config: RunConfig) -> ray.train.RunConfig:
    return ray.train.RunConfig(
        name=config.trainer.run_name,
        storage_path=storage_path_for(config),
        failure_config=FailureConfig(max_failures=config.cluster.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
    )


def _connect(address: str | None) -> None:
    """Attach to `cluster.address` (`auto`: the cluster on this node), or to the cluster a Ray job
    runs in (RAY_ADDRESS); otherwise start a fresh local Ray rather than join whichever cluster
    happens to run on this machine."""
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    ray.init(address=address, logging_level=logging.WARNING)


# ---------------------------------------------------------------- inside each Ray Train worker


def train_worker(loop_config: dict) -> None:
    """One Ray Train worker: the stage's Lightning run with Ray's strategy, plugin and reporting."""
    config = config_from_dict(loop_config["config"])
    if not config.cluster.use_gpu:
        # DeepSpeed picks its accelerator on first use; this worker has no GPU.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    from pretrain.distributed.ray_lightning import run_stage_in_worker  # imports Lightning

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        run_stage_in_worker(config, resume_from=None)
        return
    with checkpoint.as_directory() as directory:  # local storage: the folder itself, no copy
        log.info("restoring from Ray Train checkpoint %s", directory)
        run_stage_in_worker(config, resume_from=directory)
