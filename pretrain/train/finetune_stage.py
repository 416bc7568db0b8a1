"""The fine-tuning stage: shards → classifier under Lightning (+ DeepSpeed), checkpoints, reports,
then the multi-view test of the split it trained on.

It shares the pretraining stage's machinery (strategy, trainer, atomic checkpoints with the stream
position, preemption, resume, W&B/CSV loggers, NaN guard); what differs is the model (initialised
from `finetune.init` in any weight format), the labeled stream and the final evaluation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import pytorch_lightning as pl

from pretrain.config import ConfigError, RunConfig
from pretrain.data.shards import read_manifest
from pretrain.models.vit import ArchSpec
from pretrain.train.callbacks import ThroughputMonitor
from pretrain.train.checkpoint_callback import CheckpointCallback
from pretrain.train.finetune_init import initialise
from pretrain.models import build_finetune_model
from pretrain.models.backbone_flops import encoder_forward_flops
from pretrain.train.finetune_module import FinetuneModule
from pretrain.train.flops import TRAIN_FLOPS_PER_FORWARD, device_peak_tflops
from pretrain.train.loggers import build_loggers, finish_loggers, install_rank_zero_logging
from pretrain.train.optim import schedule_for
from pretrain.train.pretrain_stage import PretrainData, _resume_checkpoint, batches_per_rank_per_epoch
from pretrain.train.stream import ResumableStream
from pretrain.train.strategy import build_strategy, is_deepspeed, resolve_placement, validate_world_size
from pretrain.train.trainer import build_trainer

if TYPE_CHECKING:
    from pretrain.train.entry import ExternalLaunch, StageResult

log = logging.getLogger(__name__)

EVAL_DIR = "eval"


class FinetuneData(PretrainData):
    """The labeled, augmented, resumable train stream of this rank (built once the rank is known)."""

    def train_dataloader(self) -> ResumableStream:
        if self.stream is None:
            from pretrain.data.streams.finetune_stream import build_finetune_train_loader

            loader = build_finetune_train_loader(self.config, self.trainer.global_rank, self.trainer.world_size)
            self.stream = ResumableStream(loader)
        if self._pending is not None:
            self.stream.restore(self._pending)
            self._pending = None
        return self.stream


def classifier_train_flops(spec: ArchSpec) -> int:
    """FLOPs of one training clip: every token through the encoder (no masking, no decoder)."""
    return TRAIN_FLOPS_PER_FORWARD * encoder_forward_flops(spec, spec.num_tokens)


def class_names_of(config: RunConfig) -> list[str]:
    """The manifest's class index (or `finetune.num_classes` generic names for unlabeled shards)."""
    classes = read_manifest(config.data.require_shards()).classes
    wanted = config.finetune.num_classes
    if wanted is not None and classes and wanted != len(classes):
        raise ConfigError(f"finetune.num_classes={wanted} but {config.data.shards} has {len(classes)} classes")
    if not classes and wanted is None:
        raise ConfigError(f"{config.data.shards} has no class labels; fine-tuning needs a labeled corpus")
    return classes or [f"class_{i}" for i in range(wanted)]


def run_finetune(config: RunConfig, launch: Optional["ExternalLaunch"] = None) -> "StageResult":
    from pretrain.train.entry import StageResult, resolve_run_dir, save_run_info

    install_rank_zero_logging()
    placement = resolve_placement(config)
    validate_world_size(config, placement)
    strategy = launch.strategy if launch is not None else build_strategy(config, placement)
    class_names = class_names_of(config)
    steps_per_epoch = max(1, batches_per_rank_per_epoch(config, config.world_size) // config.optim.accumulate_grad_batches)
    schedule = schedule_for(config, steps_per_epoch)
    run_dir = resolve_run_dir(config)
    resume = _resume_checkpoint(config, run_dir, launch, is_deepspeed(strategy))
    pl.seed_everything(config.trainer.seed, workers=True, verbose=False)
    model = build_finetune_model(config, len(class_names))
    init_report = initialise(model, config) if resume is None else {"source": "resumed"}
    module = FinetuneModule(config, model, class_names, steps_per_epoch)
    data = FinetuneData(config)
    info = {"deepspeed": is_deepspeed(strategy), "strategy": config.strategy.name,
            "zero_stage": config.strategy.zero_stage}
    checkpointer = CheckpointCallback(run_dir, config, config.trainer.checkpoint_every_steps, info, data=data)
    throughput = ThroughputMonitor(model.spec, 0.0, 0.0, config.logging.every_steps,
                                   device_peak_tflops(config.logging.device_peak_tflops), data.loader_stats)
    throughput.flops_per_clip = classifier_train_flops(model.spec)  # no decoder, every token encoded
    callbacks = [checkpointer, throughput, *(launch.callbacks if launch else [])]
    save_run_info(config, run_dir, {"steps_per_epoch": steps_per_epoch, "total_steps": schedule.total_steps,
                                    "class_names": class_names, "init": init_report,
                                    "resumed_from": str(resume.path) if resume else None})
    loggers = build_loggers(config, run_dir)
    trainer = build_trainer(config, placement, strategy, run_dir, schedule.total_steps, callbacks, loggers,
                            plugins=launch.plugins if launch else None, external=launch is not None)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(resume.state_path) if resume else None)
        last = checkpointer.saved[-1] if checkpointer.saved else None
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        if last is not None and launch is None and not checkpointer.stopped_by_signal:
            test = _final_test(config, last, run_dir / EVAL_DIR)
            for logger in loggers:  # beside the training curves in W&B / CSV (rank zero only)
                logger.log_metrics(test, step=trainer.global_step)
                logger.save()
            metrics.update(test)
    finally:
        finish_loggers(loggers)
    return StageResult(
        run_dir=run_dir, global_step=trainer.global_step, metrics=metrics,
        checkpoints=list(checkpointer.saved), last_checkpoint=last,
        stopped_by_signal=checkpointer.stopped_by_signal, skipped_nonfinite=module.guard.total_skipped,
        resumed_from=resume.path if resume else None,
    )


def _final_test(config: RunConfig, checkpoint: Path, out_dir: Path) -> dict[str, float]:
    """Multi-view test of the trained split from the last checkpoint (weights consolidated)."""
    from pretrain.evaluate.run import evaluate

    results = evaluate(config, str(checkpoint), splits=(config.finetune.split,), out_dir=out_dir)
    metrics = results.per_split[config.finetune.split]
    log.info("test split %d (%d videos, %d×%d views): top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%%",
             config.finetune.split, metrics.num_videos, config.data.test_clips, config.data.test_crops,
             100 * metrics.top1, 100 * metrics.top5, 100 * metrics.mean_class_accuracy)
    return {f"test/{name}": float(value) for name, value in metrics.as_dict().items()}
