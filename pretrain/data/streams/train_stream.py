"""The endless, resumable training stream shared by pretraining and fine-tuning.

Per (rank, worker) and epoch, the stages are::

    shard_cycle        endless reshuffled shard list (seed, epoch, pass)
    split_by_rank      explicit node split
    split_by_worker    explicit worker split
    read_shards        tar → samples; unreadable shards logged, counted, skipped
    select             split membership from each sample's json
    shuffle            seeded buffer
    make_clips         decode once → num_sample clips; failures logged, counted, skipped
    batch_clips        collate (+ mixup hook), mark the stream position
    epoch cut          exactly `num_batches(worker)` batches

Every worker yields the same number of batches per epoch on every rank, so DDP ranks stay in
step. Randomness is keyed by (seed, epoch, rank, worker, video or batch index), which is what makes
a resumed stream identical to an uninterrupted one.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence

from pretrain.config import RunConfig
from pretrain.data.stage_clock import CLOCK
from pretrain.data.streams import pipeline_stages
from pretrain.data.streams.batching import BatchHook, ClipMaker, StartPoint, batch_clips, make_clips
from pretrain.data.streams.epoch import TrainingEpoch
from pretrain.data.streams.loader import BatchStream, Slot, StreamLoader, pin_batches
from pretrain.data.streams.selection import Selection

# Sub-streams of a slot's seed, so clip, batch and shuffle randomness never collide.
CLIP_SEED, BATCH_SEED, SHUFFLE_SEED = 0, 1, 2


class TrainStream(BatchStream):
    def __init__(
        self,
        members: Sequence[tuple[str, int]],
        selection: Selection,
        maker: ClipMaker,
        clips_per_video: int,
        batch_size: int,
        batches_per_rank: int,
        shuffle_buffer: int,
        rank: int,
        world_size: int,
        num_workers: int,
        seed: int,
        normalize: bool = True,
        hook: BatchHook | None = None,
        yuv420: bool = False,
    ) -> None:
        super().__init__(rank, world_size, num_workers, seed)
        if not members:
            raise pipeline_stages.DataError(f"no shard holds samples of {selection.describe()}")
        self.urls = [url for url, _ in members]
        self.num_videos = sum(count for _, count in members)
        self.selection, self.maker, self.hook, self.normalize = selection, maker, hook, normalize
        self.yuv420 = yuv420
        self.clips_per_video, self.batch_size = clips_per_video, batch_size
        self.batches_per_rank, self.shuffle_buffer = batches_per_rank, shuffle_buffer

    def num_batches(self, worker: int) -> int:
        return len(range(worker, self.batches_per_rank, self.num_workers))

    def batches(self, slot: Slot, start: StartPoint) -> Iterator[dict]:
        key = (slot.seed, slot.epoch, slot.rank, slot.worker)
        counters = pipeline_stages.Counters(start.skipped_samples, start.skipped_shards)
        urls = pipeline_stages.shard_cycle(self.urls, slot.seed, slot.epoch)
        urls = pipeline_stages.split_by_rank(urls, slot.rank, slot.world_size)
        urls = pipeline_stages.split_by_worker(urls, slot.worker, slot.num_workers)
        samples = pipeline_stages.read_shards(urls, counters, len(self.urls))
        samples = pipeline_stages.select(samples, self.selection.accepts, counters)
        shuffle_rng = random.Random(int(pipeline_stages.seeded_rng(*key, SHUFFLE_SEED).integers(2**62)))
        samples = pipeline_stages.shuffle(samples, self.shuffle_buffer, shuffle_rng)
        samples = CLOCK.timed("read", samples)  # tar parsing, json, selection, shuffle
        clips = make_clips(samples, self.maker, (*key, CLIP_SEED), start, counters, self.num_videos)
        batches = batch_clips(
            clips,
            self.batch_size,
            self.clips_per_video,
            slot.worker,
            start,
            counters,
            normalize=self.normalize,
            hook=self.hook,
            seed_parts=(*key, BATCH_SEED),
            yuv420=self.yuv420,
        )
        yield from itertools.islice(batches, max(self.num_batches(slot.worker) - start.batches, 0))


def train_loader(
    config: RunConfig,
    epoch: TrainingEpoch,
    maker: ClipMaker,
    rank: int,
    world_size: int,
    hook: BatchHook | None = None,
    yuv420: bool = False,
) -> StreamLoader:
    """The training loader of pretraining and fine-tuning: one `TrainStream` over this rank's share of
    the epoch, set from `config.data`; `hook` (mixup) and `yuv420` are the stage's own."""
    data = config.data
    stream = TrainStream(
        epoch.members,
        epoch.selection,
        maker,
        clips_per_video=data.num_sample,
        batch_size=data.batch_size,
        batches_per_rank=epoch.batches_per_rank,
        shuffle_buffer=data.shuffle_buffer,
        rank=rank,
        world_size=world_size,
        num_workers=data.num_workers,
        seed=config.trainer.seed,
        normalize=not data.normalize_on_device,
        hook=hook,
        yuv420=yuv420,
    )
    return StreamLoader(stream, data.num_workers, pin_memory=pin_batches(config.trainer.accelerator))
