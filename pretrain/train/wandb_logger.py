"""Lightning's WandbLogger, logging against the trainer's global step.

Lightning's logger lets W&B count its own `_step` per `log` call, so anything logged apart from the
metrics (media, the final test) makes `_step` jump away from the training step. Here every row is
logged at `step=global step` (rows of one step merge), with `trainer/global_step` as the defined
step metric, so W&B names media by the same step as the PNGs (`recon/grid_20_*` ↔ `step-00000020`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

STEP_METRIC = "trainer/global_step"


class GlobalStepWandbLogger(WandbLogger):
    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        # Lightning always passes `anonymous` (None by default); wandb now warns it has no effect.
        self._wandb_init.pop("anonymous", None)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if step is None:
            super().log_metrics(metrics)
            return
        prefixed = {
            f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}" if self._prefix else k: v for k, v in metrics.items()
        }
        self.experiment.log({**prefixed, STEP_METRIC: step}, step=step)
