"""Where a loader process spends its time, per stage of the per-clip work (`tubelet bench data
--profile`). Off by default: every hook is then one attribute test.

Stages are exclusive: time spent in a stage entered inside another (rendering pending clips during
collate, decoding between demuxed packets) counts for the inner one only. Times are wall
nanoseconds (`perf_counter_ns`, 0.2 us a reading: the hooks run per packet); the profile scales them
to the process's CPU time over the same run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

STAGES = ("read", "demux", "decode", "convert", "crop_resize", "masks", "collate")
"""read: shard read, tar parsing, json, selection, shuffle; demux: container open, seek and packet
reads; decode: the codec; convert: YUV -> RGB (none when batches ship YUV 4:2:0); crop_resize: crop,
resize and mirror of the kept planes; masks: encoder and decoder masks; collate: batch assembly."""

Item = TypeVar("Item")


class StageClock:
    def __init__(self) -> None:
        self.enabled = False
        self.ns = dict.fromkeys(STAGES, 0)
        self._stack: list[list] = []  # [stage, started_ns, inner_ns]
        self._scopes = {stage: _Scope(self, stage) for stage in STAGES}

    def reset(self, enabled: bool) -> None:
        self.enabled, self.ns, self._stack = enabled, dict.fromkeys(STAGES, 0), []

    def start(self, stage: str) -> None:
        if self.enabled:
            self._stack.append([stage, time.perf_counter_ns(), 0])

    def stop(self) -> None:
        if not self.enabled or not self._stack:
            return
        stage, started, inner = self._stack.pop()
        spent = time.perf_counter_ns() - started
        self.ns[stage] += spent - inner
        if self._stack:
            self._stack[-1][2] += spent

    def stage(self, stage: str) -> _Scope:
        """`with CLOCK.stage("decode"): ...` counts the block for the stage."""
        return self._scopes[stage]

    def timed(self, stage: str, items: Iterable[Item]) -> Iterator[Item]:
        """`items`, with the time each `next` takes counted for `stage` (while enabled)."""
        iterator = iter(items)
        while True:
            self.start(stage)
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.stop()
            yield item


class _Scope:
    def __init__(self, clock: StageClock, stage: str) -> None:
        self.clock, self.name = clock, stage

    def __enter__(self) -> None:
        self.clock.start(self.name)

    def __exit__(self, *exc) -> None:
        self.clock.stop()


CLOCK = StageClock()
"""The process's clock (each loader process has its own)."""
