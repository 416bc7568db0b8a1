"""The registry of weight formats: each one says whether a path is its kind and reads it.

A format is `WeightsFormat(name, detect, read)`: `detect(path) -> bool` looks (cheaply) at a file or
folder; `read(path) -> Weights` returns the state dict in Tubelet's naming plus a flat model config.
Formats are tried in registration order. A new source (another backbone's HF folder, another
original `.pth`) is a new module under `pretrain/weights/` that calls `register_format` and, when
it builds a new kind of model, `pretrain.weights.build.register_family`; nothing else changes.
The built-in formats are registered by `pretrain.weights.__init__`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from pretrain.errors import CheckpointError

if TYPE_CHECKING:
    from pretrain.config import RunConfig

Tensors = dict[str, torch.Tensor]
FAMILY = "videomae"
"""`model_config["family"]` of the VideoMAE-family models (`vit.Encoder` based); the default."""


@dataclass
class Weights:
    """What any source holds, in one shape.

    `model_config` is flat: the `ArchSpec` fields plus `kind` (pretraining | classifier | encoder),
    `family`, `source_format`, `norm_pix_loss`, `num_classes` and `class_names`."""

    state: Tensors
    model_config: dict[str, Any]
    run_config: RunConfig | None = None
    """The training run's config when the source carries one (stage checkpoints, our exports)."""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    """Format-specific facts for reports (e.g. the checkpoint's step)."""

    @property
    def kind(self) -> str:
        return self.model_config["kind"]

    @property
    def family(self) -> str:
        return self.model_config.get("family", FAMILY)

    @property
    def class_names(self) -> list[str] | None:
        return self.model_config.get("class_names")


@dataclass(frozen=True)
class WeightsFormat:
    name: str
    detect: Callable[[Path], bool]
    read: Callable[[Path], Weights]
    description: str = ""


FORMATS: list[WeightsFormat] = []


def register_format(fmt: WeightsFormat, before: str | None = None) -> None:
    """Add a format (tried last, or just before the format named `before`)."""
    if any(existing.name == fmt.name for existing in FORMATS):
        raise ValueError(f"weights format {fmt.name!r} is registered twice")
    names = [existing.name for existing in FORMATS]
    FORMATS.insert(names.index(before) if before in names else len(FORMATS), fmt)


def find_format(path: str | Path) -> WeightsFormat:
    """The first registered format that recognises `path`; a CheckpointError names the path otherwise."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"weights not found: {path}")
    for fmt in FORMATS:
        if fmt.detect(path):
            return fmt
    kinds = "; ".join(f.description or f.name for f in FORMATS)
    if path.is_dir() and (path / "runtime.json").is_file():
        raise CheckpointError(
            f"{path} is a runtime export (ONNX / TorchScript), not weights: load an ONNX one with "
            "pretrain.evaluate.onnx_model.load_onnx_classifier (tubelet predict and explain take an ONNX one as is)"
        )
    if path.is_dir() and not (path / "config.json").is_file():
        raise CheckpointError(
            f"{path} is a folder without config.json or meta.json: not a Tubelet export, "
            f"HF model folder or checkpoint"
        )
    raise CheckpointError(f"{path} is not a weights format Tubelet reads (expected one of: {kinds})")


def read_weights(path: str | Path) -> Weights:
    """State dict in our naming and the model config of any supported source (format detected)."""
    path = Path(path)
    weights = find_format(path).read(path)
    weights.source = weights.source or str(path)
    return weights


def detect_format(path: str | Path) -> str:
    """The name of the format of `path` ('stage', 'tubelet', 'hf', 'lightning', 'videomae', ...)."""
    return find_format(path).name


def model_config(spec: Any, kind: str, fmt: str, **extra: Any) -> dict[str, Any]:
    """The flat model config of an `ArchSpec` (or any spec with `to_dict`)."""
    return {
        **spec.to_dict(),
        "kind": kind,
        "family": extra.get("family", FAMILY),
        "source_format": fmt,
        "norm_pix_loss": extra.get("norm_pix_loss", True),
        "num_classes": extra.get("num_classes"),
        "class_names": extra.get("class_names"),
    }
