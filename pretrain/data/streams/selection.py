"""Which samples of a shard directory a stream reads: a split name resolved against the manifest.

Shards store every video once; official splits are memberships in each sample's
`json["splits"][id]` (see `pretrain.data.shards.manifest`). Names:

- `all`: every sample (unlabeled pretraining corpora, or pretraining on a whole labeled corpus);
- `train` / `test` / `unused`: that subset of official split `finetune.split` (1-3); on a corpus
  without official splits (a folder), `train` means every sample and the others are errors;
- `train2`, `test3`, ...: that subset of an explicit split.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from pretrain.config import ConfigError
from pretrain.data.shards import Manifest

SUBSETS = ("train", "test", "unused")
_NAME = re.compile(r"^(train|test|unused)([0-9]*)$")


@dataclass(frozen=True)
class Selection:
    """A resolved split: `split_id=None` selects every sample."""

    split_id: Optional[str]
    subset: str = "all"

    def accepts(self, meta: dict) -> bool:
        if self.split_id is None:
            return True
        return meta.get("splits", {}).get(self.split_id) == self.subset

    def describe(self) -> str:
        return "all samples" if self.split_id is None else f"split {self.split_id} {self.subset}"


def resolve_selection(name: str, manifest: Manifest, default_split_id: int = 1) -> Selection:
    """`name` (data.split / data.eval_split) → Selection, or ConfigError naming what exists."""
    if name == "all":
        return Selection(None)
    match = _NAME.match(name)
    if not match:
        raise ConfigError(f"split {name!r} is not one of all, train, test, unused (optionally followed "
                          f"by a split id, e.g. train1)")
    subset, split_id = match.group(1), match.group(2) or str(default_split_id)
    if not manifest.split_ids:
        if subset == "train" and not match.group(2):
            return Selection(None)
        raise ConfigError(f"split {name!r}: {manifest.location} ({manifest.dataset}) has no official "
                          "splits; use split=all (or train)")
    if split_id not in manifest.split_ids:
        raise ConfigError(f"split {name!r}: {manifest.location} has splits {manifest.split_ids}, not {split_id!r}")
    return Selection(split_id, subset)


def members_per_shard(manifest: Manifest, selection: Selection) -> list[tuple[str, int]]:
    """(shard url, number of selected samples) in manifest order, shards without members left out."""
    if selection.split_id is None:
        counts = {shard.name: shard.count for shard in manifest.shards}
    else:
        counts = manifest.splits[selection.split_id].get("shards", {}).get(selection.subset, {})
    base = manifest.location.rstrip("/")
    return [(f"{base}/{shard.name}", int(counts[shard.name]))
            for shard in manifest.shards if counts.get(shard.name, 0) > 0]
