"""Unpickling that cannot run code: `torch.load(weights_only=True)` with a minimal, explicit allow-list.

Torch files hold pickles. `weights_only=True` lets through only tensors, plain containers and numbers;
anything else (a global such as `os.system`, a class with `__reduce__`) is refused before it runs.
What DeepSpeed writes besides tensors was read off real ZeRO 1/2/3 checkpoints with
`torch.serialization.get_unsafe_globals_in_checkpoint`: the ZeRO stage enum, the fragment address
of each parameter slice, and the loss scaler (`DynamicLossScaler` with fp16). Those few names load
as inert stand-ins here (this package never imports DeepSpeed); the training part maps the same
names to DeepSpeed's own classes when DeepSpeed resumes (`pretrain.train.safe_resume`).
"""

from __future__ import annotations

import enum
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from pretrain.errors import CheckpointError

DEEPSPEED_GLOBALS = (
    "deepspeed.runtime.zero.config.ZeroStageEnum",
    "deepspeed.utils.tensor_fragment.fragment_address",
    "deepspeed.runtime.fp16.loss_scaler.LossScaler",
    "deepspeed.runtime.fp16.loss_scaler.DynamicLossScaler",
)
"""Every non-tensor global found in DeepSpeed's model and optimizer state files."""

AllowList = Iterable[Any | tuple[Any, str]]


class ZeroStage(enum.IntEnum):
    """Stand-in for DeepSpeed's `ZeroStageEnum` (same values)."""

    disabled = 0
    optimizer_states = 1
    gradients = 2
    weights = 3
    max_stage = 3


class InertRecord:
    """Stand-in for DeepSpeed's plain records (fragment address, loss scaler): attributes only."""

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)


def _stand_in(name: str) -> tuple[type, str]:
    return (ZeroStage if name.endswith("ZeroStageEnum") else InertRecord, name)


DEEPSPEED_STAND_INS = tuple(_stand_in(name) for name in DEEPSPEED_GLOBALS)


def safe_torch_load(
    path: str | Path, allowed: AllowList = DEEPSPEED_STAND_INS, map_location: Any = "cpu"
) -> Any:
    """`torch.load` that refuses code (on the CPU by default); a refused or unreadable file is one
    CheckpointError naming it."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(refusal_message(path)) from None
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, IndexError) as error:
        raise CheckpointError(f"{path}: not a readable torch file ({_first_line(error)})") from None


def refusal_message(path: Path) -> str:
    """One line naming what the refused pickle wanted to call (found without running it)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # the file is also broken: say only that it was refused
        names = []
    unexpected = [name for name in names if name not in DEEPSPEED_GLOBALS]
    wants = f" (it needs {', '.join(unexpected[:3])})" if unexpected else ""
    return (
        f"{path}: refused to load{wants}: a pickle that could run code; Tubelet loads only tensors "
        "and plain data (weights_only=True)"
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
