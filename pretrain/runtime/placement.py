"""Where a run executes: `trainer.accelerator` / `trainer.precision` resolved against this machine."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pretrain.config import ConfigError, RunConfig


@dataclass(frozen=True)
class Placement:
    """Where the run executes, resolved from `trainer.accelerator` / `trainer.precision`."""

    accelerator: str  # "cpu" or "gpu"
    precision: str  # Lightning precision string
    devices: int
    num_nodes: int


def resolve_placement(config: RunConfig) -> Placement:
    """`auto` accelerator → gpu when CUDA is present; `auto` precision → bf16-mixed on GPU, fp32 on CPU."""
    accelerator = config.trainer.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise ConfigError(
            "trainer.accelerator='gpu' but CUDA is not available here; use trainer.accelerator=cpu"
        )
    precision = config.trainer.precision
    if precision == "auto":
        precision = "bf16-mixed" if accelerator == "gpu" else "32-true"
    if accelerator == "cpu" and precision != "32-true":
        raise ConfigError(f"trainer.precision={precision!r} is not supported on CPU; use 32-true")
    return Placement(accelerator, precision, config.trainer.devices, config.trainer.num_nodes)
