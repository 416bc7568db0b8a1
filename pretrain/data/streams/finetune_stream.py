"""Fine-tuning loaders: a labeled, augmented, resumable train stream and a deterministic eval stream.

Train clips: random window, random resized crop (`finetune.crop_scale_min`–1, aspect 3/4–4/3),
flip, RandAugment (`finetune.randaug_ops`, `finetune.randaug_magnitude`), random erasing
(`finetune.random_erasing`); per batch, mixup/cutmix with label smoothing adds `target`, soft
labels `(B, num_classes)`, next to the hard `label` `(B,)`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pretrain.config import ConfigError, RunConfig
from pretrain.data.augment.clips import TrainAugment, finetune_clips
from pretrain.data.augment.mixup import Mixup
from pretrain.data.shards import read_manifest
from pretrain.data.streams.epoch import training_epoch
from pretrain.data.streams.eval_stream import build_eval_loader
from pretrain.data.streams.loader import StreamLoader
from pretrain.data.streams.pretrain_stream import clip_settings
from pretrain.data.streams.train_stream import train_loader


@dataclass(frozen=True)
class MixupHook:
    """Batch hook: mixes `video` and adds soft `target` (B, K)."""

    mixup: Mixup

    def __call__(self, batch: dict, rng: np.random.Generator) -> dict:
        batch["video"], batch["target"] = self.mixup(batch["video"], batch["label"], rng)
        return batch


def train_augment(config: RunConfig) -> TrainAugment:
    ft = config.finetune
    return TrainAugment(
        crop_scale=(ft.crop_scale_min, 1.0),
        randaug_ops=ft.randaug_ops,
        randaug_magnitude=float(ft.randaug_magnitude),
        random_erasing=ft.random_erasing,
    )


def build_finetune_train_loader(config: RunConfig, rank: int, world_size: int) -> StreamLoader:
    data, ft = config.data, config.finetune
    manifest = read_manifest(data.shards)
    if manifest.num_classes == 0 and ft.num_classes is None:
        raise ConfigError(
            f"data.shards={data.shards!r} has no labels (dataset {manifest.dataset}); "
            "fine-tuning needs a labeled corpus"
        )
    epoch = training_epoch(config, manifest, world_size)
    maker = functools.partial(
        finetune_clips,
        settings=clip_settings(config, manifest),
        augment=train_augment(config),
        num_sample=data.num_sample,
    )
    mixup = Mixup(
        num_classes=ft.num_classes or manifest.num_classes,
        mixup_alpha=ft.mixup,
        cutmix_alpha=ft.cutmix,
        label_smoothing=ft.label_smoothing,
    )
    return train_loader(config, epoch, maker, rank, world_size, hook=MixupHook(mixup))


def build_finetune_loaders(
    config: RunConfig, rank: int, world_size: int
) -> tuple[StreamLoader, StreamLoader]:
    """(train, validation): validation is one centred view per video of `data.eval_split`; use
    `build_eval_loader(..., multi_view=True)` for the final multi-view test."""
    return (
        build_finetune_train_loader(config, rank, world_size),
        build_eval_loader(config, rank, world_size, multi_view=False),
    )
