"""How long a training epoch is: the one rule the learning-rate schedule (`train.stage`) and the
training streams (pretrain and fine-tune) all follow, so their epochs can never disagree.

An epoch is `data.epoch_size` clips over all ranks (default: the selected split's video count x
`data.num_sample`), cut into full batches per rank (at least one, the same count on every rank).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pretrain.config import RunConfig
from pretrain.data.shards import Manifest
from pretrain.data.streams.selection import Selection, members_per_shard, resolve_selection


@dataclass(frozen=True)
class TrainingEpoch:
    selection: Selection
    """The training split (`data.split`, fine-tuning split id `finetune.split`)."""
    members: list[tuple[str, int]]
    """(shard url, selected samples) in manifest order."""
    clips: int
    """Clips per epoch over all ranks."""
    batches_per_rank: int
    """Full batches each rank yields per epoch."""


def batches_per_rank(epoch_clips: int, world_size: int, batch_size: int) -> int:
    """Full batches each rank yields per epoch (at least one)."""
    return max(1, math.ceil(epoch_clips / (world_size * batch_size)))


def training_epoch(config: RunConfig, manifest: Manifest, world_size: int) -> TrainingEpoch:
    """The epoch of a training run on `manifest` with `world_size` ranks."""
    data = config.data
    selection = resolve_selection(data.split, manifest, config.finetune.split)
    members = members_per_shard(manifest, selection)
    clips = data.epoch_size or sum(count for _, count in members) * data.num_sample
    return TrainingEpoch(selection, members, clips, batches_per_rank(clips, world_size, data.batch_size))
