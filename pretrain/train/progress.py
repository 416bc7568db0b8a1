"""Progress of a training run: where it is in steps, live, and when the whole run will end.

On a terminal, a Rich bar per epoch whose title carries the step counter (updated every step) and
the run's ETA; without one (log files, SLURM, CI) plain periodic log lines instead of the bar's
wrapped fragments. Learning rates are shown in scientific notation (2.34e-05, not 0.000).
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, RichProgressBar

from pretrain.runtime.eta import format_duration

log = logging.getLogger(__name__)


def format_metric(name: str, value: Any) -> str:
    """Learning rates in scientific notation, other floats with 4 significant digits."""
    if isinstance(value, str):
        return value
    value = float(value)
    return f"{value:.2e}" if name.endswith("lr") else f"{value:.4g}"


class RunClock:
    """Elapsed time and the whole run's ETA from the steps done since this process started."""

    def __init__(self) -> None:
        self.start_time = time.perf_counter()
        self.start_step = 0

    def start(self, step: int) -> None:
        self.start_time, self.start_step = time.perf_counter(), step

    def elapsed(self) -> float:
        return time.perf_counter() - self.start_time

    def eta(self, step: int, max_steps: int) -> float | None:
        done = step - self.start_step
        return None if done <= 0 else self.elapsed() / done * max(0, max_steps - step)

    def summary(self, step: int, max_steps: int) -> str:
        eta = self.eta(step, max_steps)
        return (
            f"step {step}/{max_steps} · elapsed {format_duration(self.elapsed())} · "
            f"ETA {format_duration(eta) if eta is not None else '?'}"
        )


class StepProgressBar(RichProgressBar):
    """Rich progress per epoch whose title says where the run is in steps, with the run's ETA
    (step-bounded runs have no epoch total to show)."""

    def __init__(self) -> None:
        super().__init__(leave=True)
        self.clock = RunClock()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self.clock.start(trainer.global_step)

    def _get_train_description(self, current_epoch: int) -> str:
        return (
            f"Epoch {current_epoch} · {self.clock.summary(self.trainer.global_step, self.trainer.max_steps)}"
        )

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        return {
            name: format_metric(name, value) if isinstance(value, float) else value
            for name, value in super().get_metrics(trainer, pl_module).items()
        }

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if self.progress is not None and self.train_progress_bar_id is not None:
            description = self._get_train_description(trainer.current_epoch)
            self.progress.update(self.train_progress_bar_id, description=description)


class ProgressLog(Callback):
    """Without a terminal: one plain log line every `every_steps` optimizer steps and at the end,
    e.g. `step 20/100 (20%) · elapsed 0:00:41 · ETA 0:02:44 · train/loss 0.6124 · train/lr 2.34e-05`."""

    def __init__(self, every_steps: int):
        self.every_steps = max(1, every_steps)
        self.clock = RunClock()
        self._logged_step = -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.start(trainer.global_step)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if step != self._logged_step and (step % self.every_steps == 0 or step >= trainer.max_steps):
            self.report(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._logged_step:
            self.report(trainer)

    def report(self, trainer: pl.Trainer) -> None:
        self._logged_step = step = trainer.global_step
        if not trainer.is_global_zero:
            return
        percent = 100 * step / max(1, trainer.max_steps)
        metrics = " · ".join(
            f"{name} {format_metric(name, value)}" for name, value in trainer.progress_bar_metrics.items()
        )
        line = self.clock.summary(step, trainer.max_steps).replace(" · ", f" ({percent:.0f}%) · ", 1)
        log.info("%s%s", line, f" · {metrics}" if metrics else "")


def progress_callback(every_steps: int, interactive: bool | None = None) -> StepProgressBar | ProgressLog:
    """The bar on a terminal (stdout is a TTY), plain log lines otherwise."""
    interactive = sys.stdout.isatty() if interactive is None else interactive
    return StepProgressBar() if interactive else ProgressLog(every_steps)
