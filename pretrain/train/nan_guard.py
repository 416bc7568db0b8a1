"""Non-finite loss guard shared by the training modules.

A non-finite loss on any rank skips the micro-batch on every rank (the ranks agree with one
all-reduce, so no rank runs a backward the others skip) and is counted; `max_consecutive` in a row
stop the run. Skipped steps leave weights and optimizer state untouched, so the checkpoint written
at the stop holds the weights from before the fault.

One skip contract for every stage: `training_step` returns `guard.checked(loss, trainer)`, the loss
itself or, when skipped, a detached zero leaf (never None, which Lightning refuses with several
ranks): backward reaches no parameter, so no gradient exists and the optimizer leaves weights and
state alone. The guard owns the state others need, read through it explicitly: `skipping` (the
DeepSpeed precision plugin skips `engine.step()`), `stop_reason` (the checkpoint's reason).
"""

from __future__ import annotations

import logging
from typing import Protocol

import pytorch_lightning as pl
import torch
import torch.distributed as dist

from pretrain.errors import TubeletError

log = logging.getLogger(__name__)


class TrainingDiverged(TubeletError, RuntimeError):
    """The loss stayed non-finite for too many consecutive steps (the message says what to try)."""


class NonFiniteGuard:
    def __init__(self, max_consecutive: int):
        self.max_consecutive = max_consecutive
        self.consecutive = 0
        self.total_skipped = 0
        self.tripped_at_step: int | None = None
        self.skipping = False
        """True while the current micro-batch is being skipped (its loss was non-finite)."""

    def checked(self, loss: torch.Tensor, trainer: pl.Trainer) -> torch.Tensor:
        """`loss` when finite on every rank, else the skip value (a detached zero leaf)."""
        self.skipping = not self.accept(loss, trainer)
        if not self.skipping:
            return loss
        return loss.detach().nan_to_num(0.0, posinf=0.0, neginf=0.0).requires_grad_()

    def accept(self, loss: torch.Tensor, trainer: pl.Trainer) -> bool:
        """True when the loss is finite on every rank; otherwise counts, and stops after K in a row."""
        finite = torch.isfinite(loss.detach()).all().to(torch.int32).reshape(1)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if bool(finite.item()):
            self.consecutive = 0
            return True
        self.consecutive += 1
        self.total_skipped += 1
        log.warning(
            "non-finite loss at step %d: skipped (%d in a row, %d in total)",
            trainer.global_step,
            self.consecutive,
            self.total_skipped,
        )
        if self.consecutive >= self.max_consecutive:
            self.tripped_at_step = trainer.global_step
            trainer.should_stop = True
        return False

    @property
    def tripped(self) -> bool:
        return self.tripped_at_step is not None

    @property
    def stop_reason(self) -> str | None:
        """Why the guard stopped the run ("nonfinite"), or None while it has not."""
        return "nonfinite" if self.tripped else None

    def failure_message(self, checkpoint: str | None) -> str:
        where = f"; checkpoint with the weights from before the fault: {checkpoint}" if checkpoint else ""
        return (
            f"training stopped: the loss was non-finite for {self.consecutive} consecutive steps "
            f"(trainer.max_nonfinite_steps={self.max_consecutive}) at step {self.tripped_at_step}{where}. "
            "Lower optim.base_lr, set optim.clip_grad, or check the data."
        )


class GuardedModule(Protocol):
    """A stage's LightningModule: it owns a guard that others read (precision plugin, checkpoints)."""

    guard: NonFiniteGuard
