"""The Lightning pieces Ray Train injects into a stage: strategy, environment, checkpoint reporting.

Runs inside Ray Train workers only (imported by `runner.train_worker`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import ray.train
from pytorch_lightning.callbacks import Callback
from ray.train.lightning import RayDDPStrategy, RayDeepSpeedStrategy, RayLightningEnvironment, prepare_trainer

from pretrain.config import RunConfig
from pretrain.runtime.placement import resolve_placement
from pretrain.train.checkpoint_callback import CheckpointCallback
from pretrain.train.strategy import CPUCapableDeepSpeedStrategy, SkippableDeepSpeedPrecision, deepspeed_config

log = logging.getLogger(__name__)


class RayZeroStrategy(CPUCapableDeepSpeedStrategy, RayDeepSpeedStrategy):
    """DeepSpeed ZeRO under Ray: devices and ranks from Ray, and CPU (gloo) allowed as in local runs.

    Method order: the CPU-capable setup first, then Ray's `root_device` and sampler ranks. Ray's
    TorchConfig has already created the process group, which DeepSpeed reuses.
    """

    strategy_name = "ray_deepspeed_cpu_capable"


def ray_strategy_for(config: RunConfig) -> RayDDPStrategy | RayZeroStrategy:
    """The Ray-aware twin of what `pretrain.train.strategy.build_strategy` builds locally."""
    placement = resolve_placement(config)
    if config.strategy.name == "deepspeed":
        return RayZeroStrategy(
            config=deepspeed_config(config, placement),
            precision_plugin=SkippableDeepSpeedPrecision(placement.precision),
        )
    # DDP for `auto` and `ddp` alike: Ray always runs one process per worker.
    return RayDDPStrategy()


class RayCheckpointReporter(Callback):
    """Reports each checkpoint the stage commits to Ray Train, as soon as it is committed.

    The stage's CheckpointCallback saves every `trainer.checkpoint_every_steps` steps (collectively,
    every rank writing its ZeRO shards into the same committed folder) and at the end. Right after,
    every rank calls `ray.train.report` (a barrier); rank zero attaches the folder, which Ray Train
    copies into `storage_path/<run>/` and hands back through `ray.train.get_checkpoint()` after a
    failure. The folder lives in the run directory, which is shared storage on a real cluster.
    """

    def __init__(self) -> None:
        self.reported = 0
        self.start_step: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        prepare_trainer(trainer)  # checks strategy and environment are Ray's

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.start_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._report_new_checkpoints(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # After every on_train_end hook, so the final save is committed whatever the callback order.
        if stage == "fit":
            self._report_new_checkpoints(trainer)

    def _report_new_checkpoints(self, trainer: pl.Trainer) -> None:
        saver = _checkpoint_callback(trainer)
        for path in saver.saved[self.reported :]:
            self._report(trainer, Path(path))
            self.reported += 1

    def _report(self, trainer: pl.Trainer, path: Path) -> None:
        metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}
        step = int(path.name.rsplit("-", 1)[-1])
        metrics.update(step=step, epoch=trainer.current_epoch, start_step=self.start_step)
        is_zero = ray.train.get_context().get_world_rank() == 0
        checkpoint = ray.train.Checkpoint.from_directory(str(path)) if is_zero else None
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"checkpoint-{path.name}")
        log.info("reported checkpoint %s to Ray Train (step %d)", path, step)


def _checkpoint_callback(trainer: pl.Trainer) -> CheckpointCallback:
    for callback in trainer.callbacks:
        if isinstance(callback, CheckpointCallback):
            return callback
    raise RuntimeError("the stage has no CheckpointCallback; Ray Train would have nothing to restore")


def run_stage_in_worker(config: RunConfig, resume_from: str | None) -> Any:
    """This worker's part of the stage, with the strategy, environment and reporter Ray needs."""
    from pretrain.train.entry import ExternalLaunch, run_stage

    launch = ExternalLaunch(
        strategy=ray_strategy_for(config),
        plugins=[RayLightningEnvironment()],
        callbacks=[RayCheckpointReporter()],
        resume_from=resume_from,
    )
    return run_stage(config, launch)
