"""Resuming a run without running code from its checkpoint files.

Lightning reads a `state.ckpt` through the strategy's CheckpointIO; DeepSpeed reads its model and
optimizer state files through the engine's checkpoint engine, whose stock `TorchCheckpointEngine`
unpickles with `weights_only=False`. Both are replaced here by loaders that go through
`pretrain.weights.safe_load.safe_torch_load` (weights_only=True): Lightning's files need no extra
globals; DeepSpeed's need exactly `DEEPSPEED_GLOBALS`, mapped here to DeepSpeed's own classes
(the engine uses them after loading). A refused file stops the resume with a one-line error.
"""

from __future__ import annotations

import importlib
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from pretrain.errors import CheckpointError
from pretrain.weights.safe_load import DEEPSPEED_GLOBALS, safe_torch_load


def deepspeed_allow_list() -> list[Any]:
    """DeepSpeed's classes named by `DEEPSPEED_GLOBALS` (imported: DeepSpeed is loaded on this path)."""
    classes = []
    for name in DEEPSPEED_GLOBALS:
        module, _, attribute = name.rpartition(".")
        classes.append(getattr(importlib.import_module(module), attribute))
    return classes


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's file checkpoints, loaded with weights_only=True whatever the caller asks for."""

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return safe_torch_load(path, allowed=(), map_location=map_location or "cpu")


def safe_deepspeed_load(path: str, map_location: Any = None) -> Any:
    """`TorchCheckpointEngine.load`'s signature, through `safe_torch_load` (onto the CPU)."""
    return safe_torch_load(path, allowed=deepspeed_allow_list())


def use_safe_checkpoint_engine(engine: Any) -> None:
    """Make a DeepSpeed engine read its checkpoint files with weights_only=True (before it loads)."""
    from deepspeed.runtime.checkpoint_engine import TorchCheckpointEngine

    current = engine.checkpoint_engine
    if type(current) is not TorchCheckpointEngine:
        raise CheckpointError(
            f"DeepSpeed reads checkpoints with a {type(current).__name__}, which cannot be "
            "made to refuse code; only its TorchCheckpointEngine resumes here"
        )
    current.load = safe_deepspeed_load  # the engine calls self.checkpoint_engine.load(path, map_location=...)
