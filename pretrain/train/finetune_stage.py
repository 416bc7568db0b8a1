"""The fine-tuning stage (full fine-tuning or linear probe): shards → classifier initialised from
`finetune.init` (any weight format), then the multi-view test of the split it trained on."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pretrain.config import ConfigError, RunConfig
from pretrain.data.shards import read_manifest
from pretrain.models import build_finetune_model
from pretrain.train.finetune_init import initialise
from pretrain.train.finetune_module import FinetuneModule
from pretrain.train.resumable_stream import StreamData
from pretrain.train.stage import Stage

log = logging.getLogger(__name__)

EVAL_DIR = "eval"


class FinetuneData(StreamData):
    """The labeled, augmented train stream of this rank."""

    def build_loader(self, rank: int, world_size: int) -> Any:
        from pretrain.data.streams.finetune_stream import build_finetune_train_loader

        return build_finetune_train_loader(self.config, rank, world_size)


def finetune_stage(config: RunConfig) -> Stage:
    class_names = class_names_of(config)
    return Stage(
        build_model=lambda: build_finetune_model(config, len(class_names)),
        build_module=lambda model, steps_per_epoch: FinetuneModule(
            config, model, class_names, steps_per_epoch
        ),
        data=FinetuneData(config),
        train_flops_per_clip=lambda model: model.flops_per_clip(),
        initialise=lambda model: initialise(model, config),
        after_fit=lambda last, run_dir: final_test(config, last, run_dir / EVAL_DIR),
        run_info={"class_names": class_names},
    )


def class_names_of(config: RunConfig) -> list[str]:
    """The manifest's class index (or `finetune.num_classes` generic names for unlabeled shards)."""
    shards = config.data.require_shards()
    classes = read_manifest(shards).classes
    wanted = config.finetune.num_classes
    if wanted is not None and classes and wanted != len(classes):
        raise ConfigError(f"finetune.num_classes={wanted} but {shards} has {len(classes)} classes")
    if not classes and wanted is None:
        raise ConfigError(f"{shards} has no class labels; fine-tuning needs a labeled corpus")
    return classes or [f"class_{i}" for i in range(wanted)]


def final_test(config: RunConfig, checkpoint: Path, out_dir: Path) -> dict[str, float]:
    """Multi-view test of the trained split from the last checkpoint (weights consolidated)."""
    from pretrain.evaluate.run import evaluate

    results = evaluate(config, str(checkpoint), splits=(config.finetune.split,), out_dir=out_dir)
    metrics = results.per_split[config.finetune.split]
    log.info(
        "test split %d (%d videos, %d×%d views): top-1 %.2f%%, top-5 %.2f%%, mean class %.2f%%",
        config.finetune.split,
        metrics.num_videos,
        config.data.test_clips,
        config.data.test_crops,
        100 * metrics.top1,
        100 * metrics.top5,
        100 * metrics.mean_class_accuracy,
    )
    return {f"test/{name}": float(value) for name, value in metrics.as_dict().items()}
