"""The training stream's position, as of the last batch that was actually trained on.

Lightning fetches one batch ahead, so asking the loader for its position at checkpoint time would
skip a batch on resume. `ResumableStream` wraps the loader, notes the loader's position after
each batch it hands out, and reports the position after the batches marked consumed. The wrapped
loader must offer `state_dict()` / `load_state_dict()` (positions after the batches it yielded).
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import pytorch_lightning as pl

log = logging.getLogger(__name__)

# Batches fetched ahead of training that we must be able to step back over (Lightning uses 1;
# DataLoader workers do not matter here: the wrapped loader's position counts delivered batches).
LOOKAHEAD = 8


class ResumableStream:
    def __init__(self, loader: Iterable):
        if not (hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict")):
            raise TypeError(
                f"{type(loader).__name__} has no state_dict/load_state_dict; cannot resume its position"
            )
        self.loader = loader
        self.delivered = 0  # batches handed to Lightning (since the start of the run, resumes included)
        self.consumed = 0  # batches trained on
        self._positions: deque[tuple[int, Any]] = deque(maxlen=LOOKAHEAD)
        self._resumed: dict | None = None

    def __iter__(self) -> Iterator[Any]:
        self._positions.clear()
        self._positions.append((self.delivered, self._snapshot()))
        for batch in self.loader:
            self.delivered += 1
            self._positions.append((self.delivered, self._snapshot()))
            yield batch

    def _snapshot(self) -> Any:
        """This rank's loader position, without collectives (called after every batch): the
        loader's `local_state_dict()` when it has one (a `StreamLoader`), else a copy of its state."""
        local = getattr(self.loader, "local_state_dict", None)
        return local() if callable(local) else copy.deepcopy(self.loader.state_dict())

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def mark_consumed(self) -> None:
        self.consumed += 1

    def position(self) -> dict:
        """The loader position right after the last consumed batch."""
        for delivered, state in self._positions:
            if delivered == self.consumed:
                return {"batches": self.consumed, "loader": state}
        if self._resumed is not None and self._resumed["batches"] == self.consumed:
            return self._resumed  # nothing trained since the resume
        raise RuntimeError(
            f"stream position after batch {self.consumed} is no longer known "
            f"(delivered {self.delivered}, remembered {[d for d, _ in self._positions]})"
        )

    def restore(self, position: dict) -> None:
        self.loader.load_state_dict(position["loader"])
        self.delivered = self.consumed = int(position["batches"])
        self._resumed = position
        log.info("data stream resumed after %d batches", self.consumed)


class StreamData(pl.LightningDataModule):
    """The rank's training stream, built once Lightning knows the rank (`build_loader`, one per
    stage); holds a resume position until then."""

    def __init__(self, config: Any):
        super().__init__()
        self.config = config
        self.stream: ResumableStream | None = None
        self._pending: dict | None = None

    def build_loader(self, rank: int, world_size: int) -> Iterable:
        """The loader of `rank` (each stage's data module says which stream)."""
        raise NotImplementedError

    def train_dataloader(self) -> ResumableStream:
        if self.stream is None:
            self.stream = ResumableStream(
                self.build_loader(self.trainer.global_rank, self.trainer.world_size)
            )
        if self._pending is not None:
            self.stream.restore(self._pending)
            self._pending = None
        return self.stream

    def restore_position(self, position: dict) -> None:
        if self.stream is None:
            self._pending = position
        else:
            self.stream.restore(position)

    def loader_stats(self) -> dict[str, float]:
        stats = getattr(self.stream.loader, "stats", None) if self.stream is not None else None
        return stats() if callable(stats) else {}
