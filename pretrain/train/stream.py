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
from dataclasses import asdict
from typing import Any, Iterable, Iterator, Optional

log = logging.getLogger(__name__)

# Batches fetched ahead of training that we must be able to step back over (Lightning uses 1;
# DataLoader workers do not matter here: the wrapped loader's position counts delivered batches).
LOOKAHEAD = 8


class ResumableStream:
    def __init__(self, loader: Iterable):
        if not (hasattr(loader, "state_dict") and hasattr(loader, "load_state_dict")):
            raise TypeError(f"{type(loader).__name__} has no state_dict/load_state_dict; cannot resume its position")
        self.loader = loader
        self.delivered = 0  # batches handed to Lightning (since the start of the run, resumes included)
        self.consumed = 0  # batches trained on
        self._positions: deque[tuple[int, Any]] = deque(maxlen=LOOKAHEAD)
        self._resumed: Optional[dict] = None

    def __iter__(self) -> Iterator[Any]:
        self._positions.clear()
        self._positions.append((self.delivered, self._snapshot()))
        for batch in self.loader:
            self.delivered += 1
            self._positions.append((self.delivered, self._snapshot()))
            yield batch

    def _snapshot(self) -> Any:
        """This rank's loader position, without collectives (called after every batch)."""
        local = getattr(self.loader, "local_state_dict", None)
        if callable(local):
            return local()
        return local_stream_state(self.loader)

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


def local_stream_state(loader: Any) -> Any:
    """This rank's part of a `StreamLoader.state_dict()`, without its all-gather.

    `StreamLoader.state_dict()` gathers every rank's position; calling a collective after every
    batch would tie the ranks' data fetches together, so build the rank's own entry here (the
    same format: `load_state_dict` reads the entry of its own rank)."""
    stream = getattr(loader, "stream", None)
    starts = getattr(loader, "_starts", None)
    if stream is None or starts is None:
        return copy.deepcopy(loader.state_dict())
    return {"epoch": loader.epoch, "ranks": {stream.rank: [asdict(s) for s in starts]},
            "world_size": stream.world_size, "seed": stream.seed}
