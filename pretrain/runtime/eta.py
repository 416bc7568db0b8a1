"""When a long command will end: each remaining stage costs its own work times the measured time per
unit of work of its kind.

A command made of stages of different kinds (the quickstart: one pretraining of 192 steps, then
fine-tunes of 72 steps each; the smoke run; `tubelet features` over shards) knows each stage's work
up front (steps, samples). Once a stage of a kind has finished, its seconds per unit price every
remaining stage of that kind; a kind not yet measured is priced at the mean rate of the finished
work in the same unit (steps, videos: a rough figure, refined when the first stage of that kind
ends). Multiplying elapsed time by
the number of stages left instead assumes every stage costs the first one.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def format_duration(seconds: float) -> str:
    """0:01:05 style, hours unbounded."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class StageWork:
    """One stage of a command: its name, its kind (stages of one kind cost the same per unit) and
    its work in units (optimizer steps, samples)."""

    name: str
    kind: str
    units: float
    unit: str = "steps"
    """What a unit is (steps, videos): only work in the same unit prices an unmeasured kind."""


@dataclass
class StageEta:
    """Elapsed time and ETA of a command made of `stages`, run in order; call `finish` as each ends."""

    stages: Sequence[StageWork]
    clock: Callable[[], float] = time.perf_counter
    started: float | None = None
    """When the command started, on `clock` (default: now); elapsed time counts from it."""
    finished: list[tuple[StageWork, float]] = field(default_factory=list)
    """(stage, seconds) of the stages done so far."""
    _stage_started: float = field(init=False)

    def __post_init__(self) -> None:
        self._stage_started = self.clock()
        self.started = self._stage_started if self.started is None else self.started

    def finish(self, units: float | None = None) -> float:
        """The current stage ended (after `units` of work if it differed from the plan); its seconds."""
        stage = self.stages[len(self.finished)]
        if units is not None:
            stage = StageWork(stage.name, stage.kind, units, stage.unit)
        now = self.clock()
        seconds, self._stage_started = now - self._stage_started, now
        self.finished.append((stage, seconds))
        return seconds

    def seconds_per_unit(self, kind: str) -> float | None:
        """Measured on the finished stages of `kind`; else the mean over the finished work in the
        same unit; None before any such stage has finished."""
        unit = next((stage.unit for stage in self.stages if stage.kind == kind), None)
        same_kind = [(s, t) for s, t in self.finished if s.kind == kind]
        for selected in (same_kind, [(s, t) for s, t in self.finished if s.unit == unit]):
            units = sum(stage.units for stage, _ in selected)
            if units > 0:
                return sum(seconds for _, seconds in selected) / units
        return None

    def remaining_seconds(self) -> float | None:
        """Seconds until the last stage ends (less the time the current one has run), or None
        before any price is known."""
        total = 0.0
        for position, stage in enumerate(self.stages[len(self.finished) :]):
            rate = self.seconds_per_unit(stage.kind) if stage.units else 0.0
            if rate is None:
                return None
            running = self.clock() - self._stage_started if position == 0 else 0.0
            total += max(0.0, rate * stage.units - running)
        return total

    def line(self) -> str:
        """`stage 2/3 (finetune pretrained seed 0) · elapsed 0:01:02 · ETA 0:00:40`."""
        index = min(len(self.finished), len(self.stages) - 1)
        remaining = self.remaining_seconds()
        return (
            f"stage {index + 1}/{len(self.stages)} ({self.stages[index].name}) · "
            f"elapsed {format_duration(self.clock() - self.started)} · "
            f"ETA {format_duration(remaining) if remaining is not None else '?'}"
        )


@dataclass
class WorkProgress:
    """Progress over `total` units of one kind (samples): the ETA is the units left times the
    measured seconds per unit. On a terminal one line rewritten in place; without one (log files,
    CI) a log line at every tenth of the work, so a log holds at most about ten of them."""

    what: str
    """`features: 12/40 samples`: the command and its unit."""
    total: int
    logger: logging.Logger
    interactive: bool = field(default_factory=lambda: sys.stderr.isatty())
    clock: Callable[[], float] = time.perf_counter
    done: int = 0
    _started: float = field(init=False)
    _logged_tenth: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._started = self.clock()

    def line(self) -> str:
        """`features: 12/40 samples (30%) · elapsed 0:00:10 · ETA 0:00:23`."""
        elapsed = self.clock() - self._started
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        command, _, unit = self.what.partition(": ")
        return (
            f"{command}: {self.done}/{self.total} {unit} ({100 * self.done / max(1, self.total):.0f}%) · "
            f"elapsed {format_duration(elapsed)} · ETA {format_duration(eta) if eta is not None else '?'}"
        )

    def advance(self, units: int) -> None:
        self.done += units
        if self.interactive:
            end = "\n" if self.done >= self.total else ""
            print(f"\r{self.line()}", end=end, file=sys.stderr, flush=True)
            return
        tenth = 10 * self.done // max(1, self.total)
        if tenth > self._logged_tenth or self.done >= self.total:
            self._logged_tenth = tenth
            self.logger.info("%s", self.line())
