"""The loader every stream is served by: a torch DataLoader over a `BatchStream` (batches are
made inside the worker processes) that knows where it is in the stream.

Position = (epoch, per-worker `StartPoint`). It lives in shared memory (`multiprocessing` Value
and Array) so worker processes, persistent or not, read the current epoch and resume point when
they start an epoch; the loader updates it from the `StreamMark` each batch carries. Lightning
saves `state_dict()` in its checkpoints and calls `load_state_dict()` on resume (stateful
dataloaders): with the same seed, world size and worker count, the batches that follow are
exactly those an uninterrupted run would have produced.

Iterating the loader continues from the current position to the end of the current epoch; the
next iteration starts the next epoch (reshuffled: the epoch is part of every seed).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pretrain.data.streams.allocator import keep_large_buffers
from pretrain.data.streams.batching import StartPoint, StreamMark
from pretrain.data.streams.pipeline_stages import DataError

log = logging.getLogger(__name__)

_FIELDS = len(StartPoint.__dataclass_fields__)


@dataclass(frozen=True)
class Slot:
    """Who is reading: rank of world_size, worker of num_workers, in epoch, with seed."""

    rank: int
    world_size: int
    worker: int
    num_workers: int
    epoch: int
    seed: int

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers


class BatchStream(IterableDataset):
    """Base of the streams: subclasses define `batches(slot, start)` and `num_batches(worker)`."""

    def __init__(self, rank: int, world_size: int, num_workers: int, seed: int) -> None:
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.num_workers = max(num_workers, 1)  # 0 workers: the main process reads as worker 0
        self._epoch = multiprocessing.Value("q", 0, lock=False)
        self._starts = multiprocessing.Array("q", _FIELDS * self.num_workers, lock=False)

    def batches(self, slot: Slot, start: StartPoint) -> Iterator[dict]:
        raise NotImplementedError

    def num_batches(self, worker: int) -> int:
        """Batches `worker` yields per epoch on this rank."""
        raise NotImplementedError

    def __len__(self) -> int:
        return sum(self.num_batches(w) for w in range(self.num_workers))

    def set_position(self, epoch: int, starts: list[StartPoint]) -> None:
        self._epoch.value = epoch
        for worker, start in enumerate(starts):
            self._starts[worker * _FIELDS : (worker + 1) * _FIELDS] = list(asdict(start).values())

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        if workers != self.num_workers:
            raise DataError(f"stream built for {self.num_workers} workers runs in {workers}")
        start = StartPoint(*self._starts[worker * _FIELDS : (worker + 1) * _FIELDS])
        slot = Slot(self.rank, self.world_size, worker, workers, int(self._epoch.value), self.seed)
        yield from self.batches(slot, start)


def pin_batches(accelerator: str) -> bool:
    """Page-locked batches when the run trains on a GPU (`trainer.accelerator` gpu, or auto with
    CUDA present): Lightning copies batches with `non_blocking=True`, which is only asynchronous
    from pinned memory. The DataLoader's pin thread copies each batch out of shared memory once."""
    import torch

    return accelerator != "cpu" and torch.cuda.is_available()


class StreamLoader(DataLoader):
    """DataLoader over a BatchStream, with a checkpointable position and skip counters."""

    def __init__(
        self, stream: BatchStream, num_workers: int, pin_memory: bool = False, **kwargs: Any
    ) -> None:
        kwargs.setdefault("worker_init_fn", _init_worker)
        super().__init__(stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **kwargs)
        self.stream = stream
        self.epoch = 0
        self._starts = [StartPoint() for _ in range(stream.num_workers)]
        self._decoded = [0] * stream.num_workers

    # ---------------------------------------------------------------- iteration

    def __iter__(self) -> Iterator[dict]:
        if self.batches_in_epoch and self.batches_in_epoch >= len(self.stream):
            self._next_epoch()  # the consumer stopped at the known length without exhausting us
        self.stream.set_position(self.epoch, self._starts)
        for batch in self._in_stream_order(super().__iter__()):
            mark: StreamMark = batch.pop("_stream")
            self._starts[mark.worker] = mark.position
            self._decoded[mark.worker] = mark.decoded_videos
            yield batch
        self._check_something_decoded()
        self._next_epoch()

    def _next_epoch(self) -> None:
        self.epoch += 1
        self._starts = [
            StartPoint(skipped_samples=s.skipped_samples, skipped_shards=s.skipped_shards)
            for s in self._starts
        ]
        self._decoded = [0] * self.stream.num_workers

    def _in_stream_order(self, batches: Iterator[dict]) -> Iterator[dict]:
        """Batch k of an epoch comes from worker k % W. The DataLoader always starts polling at
        worker 0, so after resuming mid-round hold the few batches that arrive early."""
        held: dict[int, list[dict]] = {w: [] for w in range(self.stream.num_workers)}
        remaining = {w: self.stream.num_batches(w) - self._starts[w].batches for w in held}
        produced = sum(s.batches for s in self._starts)
        while any(n > 0 for n in remaining.values()):
            wanted = produced % self.stream.num_workers
            if remaining[wanted] <= 0:  # an epoch cut that is not a multiple of W
                produced += 1
                continue
            while not held[wanted]:
                batch = next(batches, None)
                if batch is None:  # a worker ended early (finite streams): flush the rest
                    yield from (b for w in sorted(held) for b in held[w])
                    return
                held[batch["_stream"].worker].append(batch)
            yield held[wanted].pop(0)
            remaining[wanted] -= 1
            produced += 1
        yield from batches  # lets the DataLoader iterator finish and shut its workers down

    def _check_something_decoded(self) -> None:
        if len(self.stream) and not any(self._decoded) and self.skipped_samples:
            raise DataError(f"no video decoded in epoch {self.epoch}: {self.skipped_samples} samples failed")

    # ---------------------------------------------------------------- logging

    @property
    def skipped_samples(self) -> int:
        """Samples skipped so far (failed to decode or malformed), over all workers."""
        return sum(s.skipped_samples for s in self._starts)

    @property
    def skipped_shards(self) -> int:
        """Shards that could not be opened or read to the end, over all workers."""
        return sum(s.skipped_shards for s in self._starts)

    @property
    def batches_in_epoch(self) -> int:
        return sum(s.batches for s in self._starts)

    def stats(self) -> dict[str, int]:
        """Counters for the logger: `data/skipped_samples`, `data/skipped_shards`, `data/epoch`."""
        return {
            "data/skipped_samples": self.skipped_samples,
            "data/skipped_shards": self.skipped_shards,
            "data/epoch": self.epoch,
        }

    # ---------------------------------------------------------------- checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Position of every rank (gathered when torch.distributed runs: Lightning saves rank 0's
        copy, and ranks that skipped different videos are at different places). With a process
        group this is a collective: call it on every rank, as Lightning's checkpointing does."""
        state = self.local_state_dict()
        own = state["ranks"][self.stream.rank]
        state["ranks"] = _gather_ranks(own, self.stream.world_size, self.stream.rank)
        return state

    def local_state_dict(self) -> dict[str, Any]:
        """This rank's position only, no collective (cheap enough to take after every batch);
        `load_state_dict` accepts it too."""
        return {
            "epoch": self.epoch,
            "ranks": {self.stream.rank: [asdict(s) for s in self._starts]},
            "world_size": self.stream.world_size,
            "seed": self.stream.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mismatched = [
            f"{name} {state[name]} → {getattr(self.stream, name)}"
            for name in ("world_size", "seed")
            if state.get(name) != getattr(self.stream, name)
        ]
        ranks = {int(rank): workers for rank, workers in state["ranks"].items()}
        workers = ranks.get(self.stream.rank, next(iter(ranks.values())))
        if len(workers) != self.stream.num_workers:
            mismatched.append(f"num_workers {len(workers)} → {self.stream.num_workers}")
        if mismatched:
            log.warning(
                "data stream resumed with changed %s: resuming at epoch %d start instead of mid-epoch",
                ", ".join(mismatched),
                state["epoch"],
            )
            self.epoch, self._starts = int(state["epoch"]), [StartPoint() for _ in self._starts]
            return
        self.epoch = int(state["epoch"])
        self._starts = [StartPoint(**worker) for worker in workers]


def _init_worker(worker_id: int) -> None:
    keep_large_buffers()  # batches reuse heap memory instead of faulting in fresh pages


def _gather_ranks(own: list[dict], world_size: int, rank: int) -> dict[int, list[dict]]:
    """{rank: worker positions} of all ranks when a process group of this size runs, else own."""
    import torch.distributed as dist

    if (
        world_size > 1
        and dist.is_available()
        and dist.is_initialized()
        and dist.get_world_size() == world_size
    ):
        gathered: list = [None] * world_size
        dist.all_gather_object(gathered, own)
        return dict(enumerate(gathered))
    return {rank: own}
