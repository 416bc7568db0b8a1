"""The Lightning callback that decides when to save: every N steps, on preemption signals, at the end.

SIGTERM and SIGUSR1 only set a flag (no I/O or collectives inside a signal handler). At the next
optimizer-step boundary the ranks agree on the flag with one all-reduce, every rank saves its part,
and the run stops cleanly, so a preempted job exits 0 with a checkpoint a later `resume=auto` finds.
The data stream position travels in this callback's state.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback

from pretrain.config import RunConfig
from pretrain.train.nan_guard import NonFiniteGuard
from pretrain.train.resumable_stream import ResumableStream
from pretrain.weights import commit as ckpt

log = logging.getLogger(__name__)

PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StreamHolder(Protocol):
    """Owner of the training stream (built once Lightning knows the rank)."""

    stream: ResumableStream | None

    def restore_position(self, position: dict) -> None: ...


class CheckpointCallback(Callback):
    def __init__(
        self,
        run_dir: Path,
        config: RunConfig,
        every_steps: int,
        strategy_info: dict,
        data: StreamHolder | None = None,
        keep_last: int = 3,
        guard: NonFiniteGuard | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.config = config
        self.every_steps = every_steps
        self.strategy_info = strategy_info
        self.data = data
        self.keep_last = keep_last
        self.guard = guard  # the module's NaN guard: its stop reason names the final checkpoint
        self.signal_received: int | None = None
        self.stopped_by_signal = False
        self.saved: list[Path] = []
        self._last_saved_step = -1
        self._seen_step = -1
        self._previous_handlers: dict[int, Any] = {}

    @property
    def stream(self) -> ResumableStream | None:
        return self.data.stream if self.data is not None else None

    # ------------------------------------------------ signals

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.signal_received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen_step = trainer.global_step
        self._last_saved_step = trainer.global_step if trainer.ckpt_path else -1
        if threading.current_thread() is not threading.main_thread():
            log.warning("not on the main thread: preemption signals cannot be caught here")
            return
        for signum in PREEMPTION_SIGNALS:  # replaces Lightning's handler for the duration of fit
            self._previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        self._previous_handlers = {}

    def _stop_requested(self, trainer: pl.Trainer) -> bool:
        """Every rank learns whether any rank was signalled (one tiny all-reduce per step)."""
        flag = torch.tensor([0 if self.signal_received is None else 1], device=trainer.strategy.root_device)
        if dist.is_available() and dist.is_initialized() and trainer.world_size > 1:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    # ------------------------------------------------ saving

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.stream is not None:
            self.stream.mark_consumed()
        step = trainer.global_step
        if step == self._seen_step:  # accumulating: no optimizer step on this batch
            return
        self._seen_step = step
        if self._stop_requested(trainer):
            name = (
                signal.Signals(self.signal_received).name
                if self.signal_received
                else "a signal on another rank"
            )
            log.warning("received %s: saving a checkpoint at step %d and stopping", name, step)
            self.save(trainer, reason="preempted")
            self.stopped_by_signal = True
            trainer.should_stop = True
        elif step % self.every_steps == 0:
            self.save(trainer, reason="periodic")

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._last_saved_step:
            stop_reason = self.guard.stop_reason if self.guard is not None else None
            self.save(trainer, reason=stop_reason or "last")

    def save(self, trainer: pl.Trainer, reason: str) -> Path:
        """Collective: every rank writes its part into the temporary folder, rank zero commits."""
        step = trainer.global_step
        tmp = ckpt.tmp_dir_for(self.run_dir, step)
        if trainer.is_global_zero:
            ckpt.prepare_tmp(tmp)
        trainer.strategy.barrier("checkpoint-prepare")
        deepspeed = bool(self.strategy_info.get("deepspeed"))
        trainer.save_checkpoint(
            tmp / (ckpt.DEEPSPEED_STATE if deepspeed else ckpt.LIGHTNING_STATE), weights_only=False
        )
        final = ckpt.tmp_dir_for(self.run_dir, step).parent / ckpt.step_dir_name(step)
        if trainer.is_global_zero:
            meta = ckpt.checkpoint_meta(
                step, trainer.current_epoch, reason, self.strategy_info, trainer.world_size
            )
            final = ckpt.commit(tmp, meta, self.config, self.keep_last)
        trainer.strategy.barrier("checkpoint-commit")
        self._last_saved_step = step
        self.saved.append(final)
        return final

    # ------------------------------------------------ stream position in the checkpoint

    def state_dict(self) -> dict:
        """Every rank's stream position (each rank reads its own part of the data)."""
        mine = self.stream.position() if self.stream is not None else None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            positions: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(positions, mine)
        else:
            positions = [mine]
        return {"streams": positions}

    def load_state_dict(self, state_dict: dict) -> None:
        positions = state_dict.get("streams") or []
        if self.data is None or not positions:
            return
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        if len(positions) != world:
            log.warning(
                "checkpoint has stream positions for %d ranks, this run has %d: the data "
                "stream restarts instead of resuming",
                len(positions),
                world,
            )
            return
        if positions[rank] is not None:
            self.data.restore_position(positions[rank])
