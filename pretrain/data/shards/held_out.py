"""A deterministic held-out split for corpora that have none (folder builds, `--test-fraction`).

Recorded exactly like an official split: split id "1", each video `train` or `test` in its
sample json `splits` and in the manifest's `splits`/`class_counts`, so `data.split=train` and
`data.eval_split=test` select it. Membership depends only on the relative paths: within each
class (the whole corpus when unlabelled) the videos are ranked by sha256 of their path and the
first round(fraction × n) are `test`; a class with at least two videos keeps at least one in each.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict

from pretrain.data.shards.errors import ShardsError
from pretrain.data.shards.listing import Listing, VideoEntry

HELD_OUT_SPLIT = "1"
METHOD = "sha256(path) rank per class"


def _test_count(members: int, fraction: float) -> int:
    count = int(fraction * members + 0.5)
    return min(max(count, 1), members - 1) if members >= 2 else 0


def held_out_paths(entries: list[VideoEntry], fraction: float) -> set[str]:
    """Paths of the held-out (`test`) videos."""
    by_class: dict = defaultdict(list)
    for entry in entries:
        by_class[entry.class_name].append(entry.path)
    chosen: set[str] = set()
    for paths in by_class.values():
        ranked = sorted(paths, key=lambda path: hashlib.sha256(path.encode("utf-8")).hexdigest())
        chosen.update(ranked[: _test_count(len(ranked), fraction)])
    return chosen


def with_held_out_split(listing: Listing, fraction: float) -> Listing:
    """`listing` with split 1 = train/test by `fraction`; unchanged when `fraction` is 0."""
    if not fraction:
        return listing
    if listing.split_ids:
        raise ShardsError(
            f"test_fraction={fraction}: {listing.dataset} has official splits "
            f"{list(listing.split_ids)}; a held-out split is for folder corpora"
        )
    test = held_out_paths(listing.entries, fraction)
    entries = [
        dataclasses.replace(entry, splits={HELD_OUT_SPLIT: "test" if entry.path in test else "train"})
        for entry in listing.entries
    ]
    return dataclasses.replace(listing, entries=entries, split_ids=(HELD_OUT_SPLIT,))
