"""Small named stages the streams are composed of (each a generator over samples or shards).

Shard sources:
- `shard_cycle`: an endless stream of shard URLs, the list reshuffled on every pass with a seed
  that includes the epoch (the pretraining and fine-tuning train streams);
- `split_by_rank` / `split_by_worker`: explicit node and worker splitting of any such stream;
- `eval_slices`: contiguous, balanced ranges of selected samples per (rank, worker), so a finite
  pass reads every sample exactly once with no padding, whatever the counts.

Sample stages: `read_shard` (tar → samples; a shard that cannot be read is logged, counted and
skipped), `select` (split membership), `shuffle` (seeded buffer). `Counters` holds what was
skipped; it travels with each batch so the main process can log it.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from webdataset import filters, tariterators

from pretrain.errors import DataError  # re-exported: the stream raises it when it cannot produce data

log = logging.getLogger(__name__)

Sample = dict[str, Any]


@dataclass
class Counters:
    """What one worker skipped so far (cumulative)."""

    skipped_samples: int = 0
    skipped_shards: int = 0
    decoded_videos: int = 0
    errors: list[str] = field(default_factory=list)

    def note(self, kind: str, message: str) -> None:
        if kind == "shard":
            self.skipped_shards += 1
        else:
            self.skipped_samples += 1
        log.warning("skipping %s: %s", kind, message)
        self.errors = (self.errors + [message])[-5:]  # a few recent messages for the final error


def seeded_rng(*parts: int) -> np.random.Generator:
    """An independent generator for one position in the stream (seed, epoch, rank, worker, ...)."""
    return np.random.default_rng(np.random.SeedSequence([int(p) for p in parts]))


def shard_cycle(urls: Sequence[str], seed: int, epoch: int) -> Iterator[str]:
    """Endless URL stream: pass k is a permutation of `urls` drawn from (seed, epoch, k)."""
    if not urls:
        raise DataError("no shards to read")
    for cycle in range(10**12):
        order = seeded_rng(seed, epoch, cycle).permutation(len(urls))
        yield from (urls[i] for i in order)


def split_by_rank(items: Iterable[Any], rank: int, world_size: int) -> Iterator[Any]:
    """Items `i` with `i % world_size == rank` (node splitting with an explicit rank)."""
    for index, item in enumerate(items):
        if index % world_size == rank:
            yield item


def split_by_worker(items: Iterable[Any], worker: int, num_workers: int) -> Iterator[Any]:
    """Items `i` with `i % num_workers == worker` (data-loader worker splitting)."""
    return split_by_rank(items, worker, num_workers)


def eval_slices(members: Sequence[tuple[str, int]], slot: int, num_slots: int) -> list[tuple[str, int, int]]:
    """The (url, first, stop) member ranges of `slot` out of `num_slots`: the concatenated
    members are cut into contiguous ranges whose sizes differ by at most one."""
    total = sum(count for _, count in members)
    start = slot * total // num_slots
    stop = (slot + 1) * total // num_slots
    slices, offset = [], 0
    for url, count in members:
        first, last = max(start - offset, 0), min(stop - offset, count)
        if first < last:
            slices.append((url, first, last))
        offset += count
    return slices


def read_shard(url: str, counters: Counters) -> Iterator[Sample]:
    """Samples of one tar shard (`__key__`, `__url__`, one entry per member extension)."""

    def handler(error: Exception) -> bool:
        counters.note("shard", f"{url}: {error}")
        return False  # stop this shard, carry on with the next

    opened = tariterators.url_opener([{"url": url}], handler=handler)
    members = tariterators.tar_file_expander(opened, handler=handler)
    yield from tariterators.group_by_keys(members, handler=handler)


def read_shards(urls: Iterable[str], counters: Counters, num_shards: int) -> Iterator[Sample]:
    """Chain `read_shard`; raise DataError once every distinct shard has failed in a row."""
    failed_in_a_row: set[str] = set()
    for url in urls:
        before = counters.skipped_shards
        produced = False
        for sample in read_shard(url, counters):
            produced = True
            yield sample
        if produced or counters.skipped_shards == before:
            failed_in_a_row.clear()
        else:
            failed_in_a_row.add(url)
            if len(failed_in_a_row) >= num_shards:
                raise DataError(
                    f"none of the {num_shards} shards can be read; last error: "
                    f"{counters.errors[-1] if counters.errors else 'unknown'}"
                )


def parse_meta(sample: Sample) -> Sample:
    """Decode the `.json` member into `meta`; the video member is the one named by meta['ext']."""
    meta = json.loads(sample["json"])
    ext = meta.get("ext") or next(k for k in sample if not k.startswith("__") and k != "json")
    return {"key": sample["__key__"], "url": sample.get("__url__", ""), "meta": meta, "video": sample[ext]}


def select(
    samples: Iterable[Sample], accepts: Callable[[dict], bool], counters: Counters
) -> Iterator[Sample]:
    """Parsed samples of the selected split (malformed ones counted and skipped)."""
    for sample in samples:
        try:
            parsed = parse_meta(sample)
        except (KeyError, StopIteration, ValueError) as error:
            counters.note(
                "sample", f"{sample.get('__key__')} in {sample.get('__url__')}: bad metadata ({error!r})"
            )
            continue
        if accepts(parsed["meta"]):
            yield parsed


def shuffle(samples: Iterable[Sample], buffer: int, rng: random.Random) -> Iterator[Sample]:
    """WebDataset's shuffle buffer with an explicit seeded generator (reproducible)."""
    if buffer <= 1:
        return iter(samples)
    return filters.shuffle(buffer, initial=min(buffer, 100), rng=rng)(iter(samples))
