"""Which samples of a shard directory a stream reads: a split name resolved against the manifest.

Shards store every video once; official splits are memberships in each sample's
`json["splits"][id]` (see `pretrain.data.shards.manifest`). Names:

- `all`: every sample (unlabeled pretraining corpora, or pretraining on a whole labeled corpus);
- `train` / `test` / `unused`: that subset of official split `finetune.split` (1-3), or of the
  held-out split of a folder build with `--test-fraction` (split "1"); on a corpus without any
  split, `train` means every sample and the others are errors;
- `train2`, `test3`, ...: that subset of an explicit split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pretrain.config import ConfigError, RunConfig
from pretrain.data.shards import Manifest

SUBSETS = ("train", "test", "unused")
TRAIN_KEY, EVAL_KEY = "data.split", "data.eval_split"
NO_SPLIT_HINT = (
    "build a held-out split (`tubelet shards build folder IN OUT --test-fraction 0.2`, then "
    "data.split=train data.eval_split=test), or set data.eval_split=all data.eval_on_train=true "
    "to evaluate on the training videos anyway (the results say so)"
)
_NAME = re.compile(r"^(train|test|unused)([0-9]*)$")


@dataclass(frozen=True)
class Selection:
    """A resolved split: `split_id=None` selects every sample."""

    split_id: str | None
    subset: str = "all"

    def accepts(self, meta: dict) -> bool:
        if self.split_id is None:
            return True
        return meta.get("splits", {}).get(self.split_id) == self.subset

    def describe(self) -> str:
        return "all samples" if self.split_id is None else f"split {self.split_id} {self.subset}"


def resolve_selection(
    name: str, manifest: Manifest, default_split_id: int = 1, key: str = TRAIN_KEY
) -> Selection:
    """`name` (the value of `key`: data.split / data.eval_split) → Selection, or ConfigError
    naming the key and what the manifest has."""
    if name == "all":
        return Selection(None)
    match = _NAME.match(name)
    if not match:
        raise ConfigError(
            f"{key}={name!r} is not one of all, train, test, unused (optionally followed "
            f"by a split id, e.g. train1)"
        )
    subset, split_id = match.group(1), match.group(2) or str(default_split_id)
    if not manifest.split_ids:
        if subset == "train" and not match.group(2):
            return Selection(None)
        raise ConfigError(
            f"{key}={name!r}: {manifest.location} ({manifest.dataset}) has no official splits "
            f"and no held-out split; {NO_SPLIT_HINT}"
        )
    if split_id not in manifest.split_ids:
        raise ConfigError(
            f"{key}={name!r}: {manifest.location} has splits {manifest.split_ids}, not {split_id!r}"
        )
    return Selection(split_id, subset)


def overlaps(trained: Selection, evaluated: Selection) -> bool:
    """Whether `evaluated` may hold videos the model trained on: only the other subset of the same
    split is held out (official splits differ, so split 2's test videos are in split 1's train)."""
    if trained.split_id is None or evaluated.split_id is None or trained.split_id != evaluated.split_id:
        return True
    return trained.subset == evaluated.subset


def stored_frame_step(stride: int, manifest: Manifest) -> int:
    """Stored frames between a clip's frames for `data.stride` (in source frames) on these shards:
    `stride` on whole-rate shards, `stride / stored stride` on --train-encoding shards (which hold
    every stored-stride-th source frame); ConfigError when the shards cannot serve the stride."""
    stored = manifest.stored_stride
    if stride % stored:
        raise ConfigError(
            f"data.stride={stride} is not a multiple of the stored stride {stored} of {manifest.location} "
            f"(built with --train-encoding --train-stride {stored}, every {stored}th source frame kept): "
            f"use data.stride={stored} or a multiple of it, or shards built without --train-encoding"
        )
    return stride // stored


def check_splits(config: RunConfig, manifest: Manifest, evaluating: bool) -> str | None:
    """Before any work: `data.split` (and `data.eval_split` when `evaluating`) exist in the manifest
    and hold samples, the evaluated videos are held out, and the shards serve `data.stride`.
    Evaluating on training videos is a ConfigError unless `data.eval_on_train`; then the warning
    to print with the results is returned."""
    stored_frame_step(config.data.stride, manifest)
    split_id = config.finetune.split
    trained = resolve_selection(config.data.split, manifest, split_id, TRAIN_KEY)
    checked = [(TRAIN_KEY, config.data.split, trained)]
    if evaluating:
        evaluated = resolve_selection(config.data.eval_split, manifest, split_id, EVAL_KEY)
        checked.append((EVAL_KEY, config.data.eval_split, evaluated))
    for key, name, selection in checked:
        if not members_per_shard(manifest, selection):
            raise ConfigError(f"{key}={name!r}: {manifest.location} has no samples in {selection.describe()}")
    if not evaluating or not overlaps(trained, evaluated):
        return None
    what = (
        f"{EVAL_KEY}={config.data.eval_split!r} ({evaluated.describe()}) holds videos of "
        f"{TRAIN_KEY}={config.data.split!r} ({trained.describe()})"
    )
    if not config.data.eval_on_train:
        raise ConfigError(f"{what}, so the model would be scored on its own training videos; {NO_SPLIT_HINT}")
    return f"EVALUATED ON TRAINING VIDEOS: {what}; not a held-out result (data.eval_on_train=true)"


def members_per_shard(manifest: Manifest, selection: Selection) -> list[tuple[str, int]]:
    """(shard url, number of selected samples) in manifest order, shards without members left out."""
    if selection.split_id is None:
        counts = {shard.name: shard.count for shard in manifest.shards}
    else:
        counts = manifest.splits[selection.split_id].get("shards", {}).get(selection.subset, {})
    base = manifest.location.rstrip("/")
    return [
        (f"{base}/{shard.name}", int(counts[shard.name]))
        for shard in manifest.shards
        if counts.get(shard.name, 0) > 0
    ]
