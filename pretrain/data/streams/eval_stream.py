"""The evaluation loader: every selected sample exactly once over all ranks and workers.

The split's samples (in manifest order, counted per shard by the manifest) are cut into
`world_size × num_workers` contiguous ranges whose sizes differ by at most one; each (rank, worker)
reads only the shards its range touches and keeps only its range. No resampling, no padding, no
duplicates, whatever the counts. Ranks may therefore run a different number of batches: gather
per-sample results (by `key`) rather than syncing per step.

Multi-view (`multi_view=True`): `data.test_clips` uniform windows × `data.test_crops` crops from
one decode, `video` `(B, V, C, T, H, W)`; otherwise one centred clip and crop, `(B, C, T, H, W)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence

from pretrain.config import RunConfig
from pretrain.data.augment.clips import eval_views
from pretrain.data.shards import read_manifest
from pretrain.data.streams import pipeline_stages
from pretrain.data.streams.batching import ClipMaker, StartPoint, batch_clips, make_clips
from pretrain.data.streams.loader import BatchStream, Slot, StreamLoader, pin_batches
from pretrain.data.streams.pretrain_stream import clip_settings
from pretrain.data.streams.selection import EVAL_KEY, Selection, members_per_shard, resolve_selection


def read_slice(
    url: str, first: int, stop: int, selection: Selection, counters: pipeline_stages.Counters
) -> Iterator[dict]:
    """Selected samples number `first` to `stop - 1` of one shard (reads no further)."""
    selected = pipeline_stages.select(pipeline_stages.read_shard(url, counters), selection.accepts, counters)
    for index, sample in enumerate(selected):
        if index >= stop:
            return
        if index >= first:
            yield sample


class EvalStream(BatchStream):
    def __init__(
        self,
        members: Sequence[tuple[str, int]],
        selection: Selection,
        maker: ClipMaker,
        batch_size: int,
        rank: int,
        world_size: int,
        num_workers: int,
        normalize: bool = True,
    ) -> None:
        super().__init__(rank, world_size, num_workers, seed=0)
        self.members, self.selection, self.maker, self.batch_size = (
            list(members),
            selection,
            maker,
            batch_size,
        )
        self.normalize = normalize

    def slices(self, worker: int) -> list[tuple[str, int, int]]:
        slot = self.rank * self.num_workers + worker
        return pipeline_stages.eval_slices(self.members, slot, self.world_size * self.num_workers)

    def num_samples(self, worker: int) -> int:
        return sum(stop - first for _, first, stop in self.slices(worker))

    def num_batches(self, worker: int) -> int:
        return math.ceil(self.num_samples(worker) / self.batch_size)

    @property
    def rank_samples(self) -> int:
        """Samples this rank reads (all its workers)."""
        return sum(self.num_samples(w) for w in range(self.num_workers))

    def batches(self, slot: Slot, start: StartPoint) -> Iterator[dict]:
        counters = pipeline_stages.Counters()
        samples = (
            sample
            for url, first, stop in self.slices(slot.worker)
            for sample in read_slice(url, first, stop, self.selection, counters)
        )
        clips = make_clips(samples, self.maker, (0,), StartPoint(), counters, num_videos=None)
        yield from batch_clips(
            clips,
            self.batch_size,
            1,
            slot.worker,
            StartPoint(),
            counters,
            normalize=self.normalize,
            partial=True,
        )


def build_eval_loader(
    config: RunConfig,
    rank: int,
    world_size: int,
    multi_view: bool = True,
    split: str | None = None,
    shard: str | None = None,
) -> StreamLoader:
    """Deterministic loader over `split` (default `data.eval_split`) for `rank` of `world_size`;
    `shard` (a shard name) reads that shard only (feature extraction works shard by shard)."""
    data = config.data
    manifest = read_manifest(data.shards)
    selection = resolve_selection(
        split or data.eval_split, manifest, config.finetune.split, key=EVAL_KEY if split is None else "split"
    )
    members = members_per_shard(manifest, selection)
    if shard is not None:
        members = [(url, count) for url, count in members if url.rsplit("/", 1)[-1] == shard]
    if not members:
        raise pipeline_stages.DataError(f"{manifest.location}: no samples in {selection.describe()}")
    clips, crops = (data.test_clips, data.test_crops) if multi_view else (1, 1)
    maker = functools.partial(
        _views,
        settings=clip_settings(config, manifest),
        num_clips=clips,
        num_crops=crops,
        multi_view=multi_view,
    )
    stream = EvalStream(
        members,
        selection,
        maker,
        data.batch_size,
        rank,
        world_size,
        data.num_workers,
        normalize=not data.normalize_on_device,
    )
    return StreamLoader(stream, data.num_workers, pin_memory=pin_batches(config.trainer.accelerator))


def _views(sample: dict, rng, settings, num_clips: int, num_crops: int, multi_view: bool) -> list[dict]:
    return eval_views(sample, settings, num_clips, num_crops, multi_view)  # deterministic: rng unused
