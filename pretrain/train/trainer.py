"""The Lightning Trainer of a stage, built in one place from the run config (shared by stages).

The stage runner (`pretrain.train.stage.run`) builds it. Local runs get their strategy from
`strategy.build_strategy`; an outer launcher (Ray) passes its own strategy, plugins and callbacks
through `ExternalLaunch` and Lightning must not launch processes itself then (devices="auto", one
node as far as Lightning knows).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ProgressBar
from pytorch_lightning.loggers import Logger
from pytorch_lightning.strategies import Strategy

from pretrain.config import RunConfig
from pretrain.runtime.placement import Placement
from pretrain.train.progress import progress_callback
from pretrain.train.safe_resume import SafeCheckpointIO

log = logging.getLogger(__name__)


def build_trainer(
    config: RunConfig,
    placement: Placement,
    strategy: str | Strategy,
    run_dir: Path,
    max_steps: int,
    callbacks: list[Callback],
    loggers: list[Logger],
    plugins: list[Any] | None = None,
    external: bool = False,
    progress_bar: bool = True,
) -> pl.Trainer:
    """A Trainer that stops after `max_steps` optimizer steps and never checkpoints by itself
    (our checkpoint callback does, atomically)."""
    callbacks = list(callbacks)
    progress = progress_callback(config.logging.every_steps) if progress_bar else None
    if progress is not None:
        callbacks.append(progress)
    return pl.Trainer(
        accelerator=placement.accelerator,
        devices="auto" if external else placement.devices,
        num_nodes=1 if external else placement.num_nodes,
        strategy=strategy,
        precision=placement.precision,
        plugins=[*(plugins or []), SafeCheckpointIO()],  # resume loads with weights_only=True
        max_steps=max_steps,
        max_epochs=-1,
        accumulate_grad_batches=config.optim.accumulate_grad_batches,
        gradient_clip_val=config.optim.clip_grad,
        gradient_clip_algorithm="norm" if config.optim.clip_grad else None,
        logger=loggers or False,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=isinstance(progress, ProgressBar),
        enable_model_summary=False,
        log_every_n_steps=config.logging.every_steps,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,  # the streams split data by rank themselves
        default_root_dir=str(run_dir),
    )
