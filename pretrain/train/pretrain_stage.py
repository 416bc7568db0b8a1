"""The pretraining stage: shards → VideoMAE under Lightning (+ DeepSpeed), checkpoints, reports."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import pytorch_lightning as pl

from pretrain.config import RunConfig
from pretrain.models import build_pretraining_model
from pretrain.weights import layout as ckpt
from pretrain.train.callbacks import ReconstructionLogger, ThroughputMonitor
from pretrain.train.checkpoint_callback import CheckpointCallback
from pretrain.train.flops import device_peak_tflops
from pretrain.train.loggers import install_rank_zero_logging
from pretrain.train.module import PretrainModule
from pretrain.train.nan_guard import TrainingDiverged
from pretrain.train.optim import schedule_for
from pretrain.train.strategy import build_strategy, is_deepspeed, resolve_placement, validate_world_size
from pretrain.train.stream import ResumableStream
from pretrain.train.trainer import fit_stage

if TYPE_CHECKING:
    from pretrain.train.entry import ExternalLaunch, StageResult

log = logging.getLogger(__name__)


class PretrainData(pl.LightningDataModule):
    """Builds the rank's stream once Lightning knows the rank; holds a resume position until then."""

    def __init__(self, config: RunConfig):
        super().__init__()
        self.config = config
        self.stream: Optional[ResumableStream] = None
        self._pending: Optional[dict] = None

    def build_loader(self, rank: int, world_size: int) -> Any:
        """The stream of `rank`; other stages override this (labeled, augmented streams)."""
        from pretrain.data.streams.pretrain_stream import build_pretrain_loader

        return build_pretrain_loader(self.config, rank, world_size)

    def train_dataloader(self) -> ResumableStream:
        if self.stream is None:
            self.stream = ResumableStream(self.build_loader(self.trainer.global_rank, self.trainer.world_size))
        if self._pending is not None:
            self.stream.restore(self._pending)
            self._pending = None
        return self.stream

    def restore_position(self, position: dict) -> None:
        if self.stream is None:
            self._pending = position
        else:
            self.stream.restore(position)

    def loader_stats(self) -> dict[str, float]:
        stats = getattr(self.stream.loader, "stats", None) if self.stream is not None else None
        return stats() if callable(stats) else {}


def batches_per_rank_per_epoch(config: RunConfig, world_size: int) -> int:
    """From the manifest, before any process starts: fails early on a missing or empty shard set."""
    from pretrain.data.streams.selection import check_splits, members_per_shard, resolve_selection
    from pretrain.data.shards import read_manifest
    from pretrain.data.streams.train_stream import batches_per_rank

    manifest = read_manifest(config.data.require_shards())
    warning = check_splits(config, manifest, evaluating=config.stage == "finetune")  # before training
    if warning:
        log.warning("%s", warning)
    members = members_per_shard(manifest, resolve_selection(config.data.split, manifest, config.finetune.split))
    clips = config.data.epoch_size or sum(count for _, count in members) * config.data.num_sample
    return batches_per_rank(clips, world_size, config.data.batch_size)


def run_pretrain(config: RunConfig, launch: Optional["ExternalLaunch"] = None) -> "StageResult":
    from pretrain.train.entry import StageResult, resolve_run_dir, save_run_info

    install_rank_zero_logging()
    placement = resolve_placement(config)
    validate_world_size(config, placement)
    strategy = launch.strategy if launch is not None else build_strategy(config, placement)
    steps_per_epoch = max(1, batches_per_rank_per_epoch(config, config.world_size) // config.optim.accumulate_grad_batches)
    schedule = schedule_for(config, steps_per_epoch)
    run_dir = resolve_run_dir(config)
    resume = _resume_checkpoint(config, run_dir, launch, is_deepspeed(strategy))
    pl.seed_everything(config.trainer.seed, workers=True, verbose=False)
    model = build_pretraining_model(config.model)
    if config.trainer.compile:
        model.compile()  # in place: parameter names (and checkpoints) stay the same
    module = PretrainModule(config, model, steps_per_epoch)
    data = PretrainData(config)
    checkpointer = _checkpointer(config, run_dir, strategy, data)
    callbacks = [checkpointer, *_reporters(config, model, run_dir, data), *(launch.callbacks if launch else [])]
    save_run_info(config, run_dir, {"steps_per_epoch": steps_per_epoch, "total_steps": schedule.total_steps,
                                    "resumed_from": str(resume.path) if resume else None})
    trainer = fit_stage(config, placement, strategy, run_dir, schedule.total_steps, callbacks, module, data,
                        resume.state_path if resume else None, launch)
    last = checkpointer.saved[-1] if checkpointer.saved else None
    if module.guard.tripped:
        raise TrainingDiverged(module.guard.failure_message(str(last) if last else None))
    return StageResult(
        run_dir=run_dir, global_step=trainer.global_step,
        metrics={k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1},
        checkpoints=list(checkpointer.saved), last_checkpoint=last,
        stopped_by_signal=checkpointer.stopped_by_signal, skipped_nonfinite=module.guard.total_skipped,
        resumed_from=resume.path if resume else None,
    )


def _resume_checkpoint(config: RunConfig, run_dir: Path, launch: Optional["ExternalLaunch"],
                       deepspeed: bool) -> Optional[ckpt.Checkpoint]:
    if launch is not None and launch.resume_from:
        found: Optional[ckpt.Checkpoint] = ckpt.read_checkpoint(launch.resume_from)
    else:
        found = ckpt.resolve_resume(config.trainer.resume, run_dir)
    if found is not None and bool(found.meta.get("deepspeed")) != deepspeed:
        written = "deepspeed" if found.meta.get("deepspeed") else "ddp/single-device"
        raise ckpt.CheckpointError(
            f"{found.path} was written by a {written} run and cannot resume strategy.name="
            f"{config.strategy.name}; export it (tubelet export) and start from the weights instead")
    if found is not None:
        log.info("resuming from %s (step %d)", found.path, found.step)
    return found


def _checkpointer(config: RunConfig, run_dir: Path, strategy: Any, data: PretrainData) -> CheckpointCallback:
    info = {"deepspeed": is_deepspeed(strategy), "strategy": config.strategy.name,
            "zero_stage": config.strategy.zero_stage}
    return CheckpointCallback(run_dir, config, config.trainer.checkpoint_every_steps, info, data=data)


def _reporters(config: RunConfig, model: Any, run_dir: Path, data: PretrainData) -> list[pl.Callback]:
    peak = device_peak_tflops(config.logging.device_peak_tflops, resolve_placement(config).precision)
    throughput = ThroughputMonitor(model.spec, config.mask.ratio, config.mask.decoder_ratio,
                                   config.logging.every_steps, peak, loader_stats=data.loader_stats)
    return [throughput, ReconstructionLogger(run_dir, config.logging.recon_every_steps)]
