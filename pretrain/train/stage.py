"""One stage runner: every training stage (pretrain, finetune, linear probe) is a `Stage`
description run by `run`, locally or under an outer launcher (Ray).

`run` does the steps every stage shares, once: placement and strategy, steps per epoch and the
schedule, the run directory, the checkpoint to resume from, seeding, the model (its FLOP count
per clip for the throughput report), the checkpoint / throughput / progress callbacks, the saved
config, loggers, fit, the stage's after-fit step, and the report. A stage only says what differs.

Locally, Lightning launches the processes itself (`trainer.devices=2` on CPU re-runs the command
once per extra rank). An outer launcher instead passes an `ExternalLaunch` with its own strategy,
environment plugins, report callbacks and the checkpoint to resume from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.strategies import Strategy
from pytorch_lightning.utilities.rank_zero import rank_zero_only
from torch import nn

from pretrain.config import RunConfig
from pretrain.models.flops import training_flops
from pretrain.runtime.device_peaks import device_peak_tflops
from pretrain.runtime.placement import Placement, resolve_placement
from pretrain.runtime.quiet import quiet_library_noise
from pretrain.train.callbacks import ThroughputMonitor
from pretrain.train.checkpoint_callback import CheckpointCallback
from pretrain.train.loggers import build_loggers, finish_loggers, install_rank_zero_logging, run_log_file
from pretrain.train.nan_guard import TrainingDiverged
from pretrain.train.optim import schedule_for
from pretrain.train.resumable_stream import StreamData
from pretrain.train.run_dir import resolve_run_dir, resume_command, save_run_info
from pretrain.train.strategy import build_strategy, is_deepspeed, validate_world_size
from pretrain.train.trainer import build_trainer
from pretrain.weights import layout as ckpt

log = logging.getLogger(__name__)


@dataclass
class ExternalLaunch:
    """What an outer launcher injects into the Lightning Trainer."""

    strategy: Any
    """A Lightning strategy object (e.g. Ray's RayDDPStrategy / RayDeepSpeedStrategy)."""
    plugins: list = field(default_factory=list)
    """Trainer plugins, e.g. the launcher's cluster environment."""
    callbacks: list = field(default_factory=list)
    """Extra callbacks, e.g. the launcher's checkpoint/metrics report callback."""
    resume_from: str | None = None
    """A checkpoint folder (or its state) to resume from; overrides `trainer.resume`."""


@dataclass
class StageResult:
    run_dir: Path
    global_step: int
    metrics: dict[str, float]
    """Last logged value of each metric (rank zero's view)."""
    checkpoints: list[Path]
    """Checkpoints this run committed, oldest first."""
    last_checkpoint: Path | None
    stopped_by_signal: bool = False
    skipped_nonfinite: int = 0
    resumed_from: Path | None = None


@dataclass
class Stage:
    """What one stage is: everything `run` does not do the same way for every stage."""

    build_model: Callable[[], nn.Module]
    """The model, randomly initialised (seeded by `run`)."""
    build_module: Callable[[nn.Module, int], pl.LightningModule]
    """(model, optimizer steps per epoch) -> the LightningModule; it owns a `guard` (NaN guard)."""
    data: StreamData
    """The rank's resumable training stream."""
    train_flops_per_clip: Callable[[nn.Module], int]
    """Forward FLOPs of one training clip, asked of the model (`run` applies the training factor)."""
    initialise: Callable[[nn.Module], dict] | None = None
    """Fresh runs only (not resumed): load starting weights; returns a report saved in run.json."""
    callbacks: Callable[[nn.Module, Path], list[Callback]] = lambda model, run_dir: []
    """(model, run dir) -> the stage's own callbacks (e.g. reconstructions)."""
    after_fit: Callable[[Path, Path], dict[str, float]] | None = None
    """(last checkpoint, run dir) -> metrics; runs after a local run that trained to the end."""
    run_info: dict = field(default_factory=dict)
    """Extra facts saved in run.json (e.g. class names)."""


def batches_per_rank_per_epoch(config: RunConfig, world_size: int) -> int:
    """From the manifest, before any process starts: fails early on a missing or empty shard set."""
    from pretrain.data.shards import read_manifest
    from pretrain.data.streams.epoch import training_epoch
    from pretrain.data.streams.selection import check_splits

    manifest = read_manifest(config.data.require_shards())
    if config.data.decode_device == "cuda":
        from pretrain.data.video.gpu_decode import require_gpu_decoding

        require_gpu_decoding()
    warning = check_splits(config, manifest, evaluating=config.trains_classifier)  # before training
    if warning:
        log.warning("%s", warning)
    return training_epoch(config, manifest, world_size).batches_per_rank


def planned_steps(config: RunConfig) -> int:
    """Optimizer steps the run of `config` will take (from its manifest; nothing is started)."""
    from pretrain.data.shards import read_manifest
    from pretrain.data.streams.epoch import training_epoch

    manifest = read_manifest(config.data.require_shards())
    batches = training_epoch(config, manifest, config.world_size).batches_per_rank
    return schedule_for(config, max(1, batches // config.optim.accumulate_grad_batches)).total_steps


def resume_checkpoint(
    config: RunConfig, run_dir: Path, launch: ExternalLaunch | None, deepspeed: bool
) -> ckpt.Checkpoint | None:
    """The checkpoint this run continues from (the launcher's, else `trainer.resume`), checked
    against the strategy that will load it."""
    if launch is not None and launch.resume_from:
        found: ckpt.Checkpoint | None = ckpt.read_checkpoint(launch.resume_from)
    else:
        found = ckpt.resolve_resume(config.trainer.resume, run_dir)
    if found is not None and bool(found.meta.get("deepspeed")) != deepspeed:
        written = "deepspeed" if found.meta.get("deepspeed") else "ddp/single-device"
        raise ckpt.CheckpointError(
            f"{found.path} was written by a {written} run and cannot resume strategy.name="
            f"{config.strategy.name}; export it (tubelet export) and start from the weights instead"
        )
    if found is not None:
        log.info("resuming from %s (step %d)", found.path, found.step)
    return found


def run(stage: Stage, config: RunConfig, launch: ExternalLaunch | None = None) -> StageResult:
    """Run `stage` to completion (or preemption) and say what it produced."""
    install_rank_zero_logging()
    placement = resolve_placement(config)
    validate_world_size(config, placement)
    strategy = launch.strategy if launch is not None else build_strategy(config, placement)
    steps_per_epoch = max(
        1, batches_per_rank_per_epoch(config, config.world_size) // config.optim.accumulate_grad_batches
    )
    schedule = schedule_for(config, steps_per_epoch)
    run_dir = resolve_run_dir(config)
    resume = resume_checkpoint(config, run_dir, launch, is_deepspeed(strategy))
    pl.seed_everything(config.trainer.seed, workers=True, verbose=False)
    model = stage.build_model()
    init_report = stage.initialise(model) if stage.initialise and resume is None else None
    module = stage.build_module(model, steps_per_epoch)
    checkpointer = CheckpointCallback(
        run_dir,
        config,
        config.trainer.checkpoint_every_steps,
        _strategy_info(config, strategy),
        data=stage.data,
        guard=module.guard,
    )
    callbacks = [
        checkpointer,
        _throughput(config, placement, stage, model),
        *stage.callbacks(model, run_dir),
        *(launch.callbacks if launch else []),
    ]
    if rank_zero_only.rank == 0:
        _save_run_info(config, run_dir, stage, steps_per_epoch, schedule.total_steps, init_report, resume)
    with run_log_file(run_dir):  # the libraries' messages, which the console leaves out
        loggers = build_loggers(config, run_dir)
        try:
            with quiet_library_noise():
                trainer = build_trainer(
                    config,
                    placement,
                    strategy,
                    run_dir,
                    schedule.total_steps,
                    callbacks,
                    loggers,
                    plugins=launch.plugins if launch else None,
                    external=launch is not None,
                )
                _fit(trainer, module, stage.data, resume, config, run_dir)
                last = checkpointer.saved[-1] if checkpointer.saved else None
                metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
                stopped_early = checkpointer.stopped_by_signal or module.guard.tripped
                if stage.after_fit is not None and last is not None and launch is None and not stopped_early:
                    metrics.update(
                        _log_after_fit(stage.after_fit(last, run_dir), loggers, trainer.global_step)
                    )
        finally:
            finish_loggers(loggers)
    return _result(trainer, module, checkpointer, metrics, config, run_dir, resume, stopped_early)


def _save_run_info(
    config: RunConfig,
    run_dir: Path,
    stage: Stage,
    steps_per_epoch: int,
    total_steps: int,
    init_report: dict | None,
    resume: ckpt.Checkpoint | None,
) -> None:
    """run.json: the schedule, the stage's own facts, where the starting weights came from."""
    init = (
        {"init": init_report if init_report is not None else {"source": "resumed"}}
        if stage.initialise
        else {}
    )
    save_run_info(
        config,
        run_dir,
        {
            "steps_per_epoch": steps_per_epoch,
            "total_steps": total_steps,
            **stage.run_info,
            **init,
            "resumed_from": str(resume.path) if resume else None,
        },
    )


def _result(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    checkpointer: CheckpointCallback,
    metrics: dict[str, float],
    config: RunConfig,
    run_dir: Path,
    resume: ckpt.Checkpoint | None,
    stopped_early: bool,
) -> StageResult:
    """Say how to resume a run that stopped early, fail a diverged one, else report what it made."""
    last = checkpointer.saved[-1] if checkpointer.saved else None
    if stopped_early and rank_zero_only.rank == 0:
        log.warning(
            "run stopped at step %d; resume it with:\n  %s",
            trainer.global_step,
            resume_command(config, run_dir),
        )
    if module.guard.tripped:
        raise TrainingDiverged(module.guard.failure_message(str(last) if last else None))
    return StageResult(
        run_dir=run_dir,
        global_step=trainer.global_step,
        metrics=metrics,
        checkpoints=list(checkpointer.saved),
        last_checkpoint=last,
        stopped_by_signal=checkpointer.stopped_by_signal,
        skipped_nonfinite=module.guard.total_skipped,
        resumed_from=resume.path if resume else None,
    )


def _fit(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    data: StreamData,
    resume: ckpt.Checkpoint | None,
    config: RunConfig,
    run_dir: Path,
) -> None:
    """trainer.fit; on Ctrl-C (Lightning turns it into exit 1) say how to continue first."""
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(resume.state_path) if resume else None)
    except (KeyboardInterrupt, SystemExit):
        if trainer.interrupted and rank_zero_only.rank == 0:
            log.warning(
                "interrupted at step %d; resume it (from its newest checkpoint) with:\n  %s",
                trainer.global_step,
                resume_command(config, run_dir),
            )
        raise


def _strategy_info(config: RunConfig, strategy: str | Strategy) -> dict:
    return {
        "deepspeed": is_deepspeed(strategy),
        "strategy": config.strategy.name,
        "zero_stage": config.strategy.zero_stage,
    }


def _throughput(config: RunConfig, placement: Placement, stage: Stage, model: nn.Module) -> ThroughputMonitor:
    peak = device_peak_tflops(config.logging.device_peak_tflops, placement.precision)
    return ThroughputMonitor(
        model.spec.num_tokens,
        training_flops(stage.train_flops_per_clip(model)),
        config.logging.every_steps,
        peak,
        loader_stats=stage.data.loader_stats,
    )


def _log_after_fit(metrics: dict[str, float], loggers: list, step: int) -> dict[str, float]:
    for logger in loggers:  # beside the training curves in W&B / CSV (rank zero only)
        logger.log_metrics(metrics, step=step)
        logger.save()
    return metrics
