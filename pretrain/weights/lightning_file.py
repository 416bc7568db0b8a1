"""A Lightning checkpoint file (`state.ckpt`, or any `.ckpt` Lightning wrote for a Tubelet module).

Its `state_dict` holds the LightningModule's tensors (`model.` + the model's own names), its
`hyper_parameters` the run config and, for fine-tuning, the class names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrain.errors import CheckpointError
from pretrain.weights.formats import Tensors
from pretrain.weights.safe_load import safe_torch_load

# Prefixes between the engine / Lightning wrappers and the model's own parameter names.
WRAPPER_PREFIXES = ("_forward_module.", "module.")
MODEL_PREFIX = "model."


def model_key(key: str) -> str | None:
    """The model's own name of a LightningModule (or DeepSpeed engine) key; None when not the model's."""
    for prefix in WRAPPER_PREFIXES:
        key = key.removeprefix(prefix)
    return key.removeprefix(MODEL_PREFIX) if key.startswith(MODEL_PREFIX) else None


def model_state(state: Tensors) -> Tensors:
    return {name: v for k, v in state.items() if (name := model_key(k)) is not None}


def is_lightning_file(path: Path) -> bool:
    """A `.ckpt` file whose top level is a Lightning checkpoint of a Tubelet run (loads it, safely)."""
    if not path.is_file() or path.suffix != ".ckpt":
        return False
    checkpoint = safe_torch_load(path)
    return (
        isinstance(checkpoint, dict)
        and "state_dict" in checkpoint
        and "config" in (checkpoint.get("hyper_parameters") or {})
    )


def read_lightning_file(path: Path) -> tuple[Tensors, dict[str, Any]]:
    """(the model's state dict, the hyper-parameters: `config`, and `class_names` for fine-tuning)."""
    checkpoint = safe_torch_load(path)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    hparams = dict(checkpoint.get("hyper_parameters") or {})
    if "config" not in hparams:
        raise CheckpointError(
            f"{path}: a Lightning checkpoint without the run config in its hyper-parameters"
        )
    return model_state(checkpoint["state_dict"]), hparams
