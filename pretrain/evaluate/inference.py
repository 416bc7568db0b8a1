"""The light inference path shared by `explain`, `predict --stream`, `export` and `bench infer`:
one loader that turns a checkpoint into an eval-ready model, and one clip reader.

Imports torch, the models and the decoder only (no Lightning, DeepSpeed, Ray or W&B): exports,
Hugging Face folders and original `.pth` files load through `pretrain.models.interop`. A training
stage checkpoint (Lightning file / ZeRO folder) still goes through `evaluate.checkpoint`, which
pulls in the training part; `load_inference_model` is the one place to switch to
`pretrain.models.from_pretrained` once the weights package provides it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from pretrain.errors import CheckpointError, DataError
from pretrain.models.vit import ArchSpec

DEFAULT_STRIDE = 4
"""Frame stride of a clip when the checkpoint carries no run config."""


@dataclass
class InferenceModel:
    model: nn.Module
    """Eval mode; a classifier maps normalized `(B, C, T, H, W)` to logits `(B, K)`."""
    kind: str
    """'classifier' or 'pretraining'."""
    spec: ArchSpec
    class_names: list[str]
    stride: int
    """Frame stride the model was trained with."""


def load_inference_model(path: str | Path) -> InferenceModel:
    """An eval-ready model from an export, HF folder, original `.pth` or a fine-tuning checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_dir() and (path / "config.json").is_file() or path.suffix in (".pth", ".pt", ".safetensors", ".bin"):
        return _from_weights(path)
    from pretrain.evaluate.checkpoint import load_finetuned  # stage checkpoints: pulls the training part

    finetuned = load_finetuned(path)
    stride = finetuned.config.data.stride if finetuned.config else DEFAULT_STRIDE
    return InferenceModel(finetuned.model.eval(), "classifier", finetuned.model.spec, finetuned.class_names, stride)


def _from_weights(path: Path) -> InferenceModel:
    from pretrain.models.interop import build_model, load_weights

    try:
        state, model_config = load_weights(path)
        model = build_model(state, model_config).eval()
    except (ValueError, RuntimeError, KeyError, OSError) as error:
        raise CheckpointError(f"{path}: cannot load a model ({error})") from None
    kind = model_config["kind"]
    if kind not in ("classifier", "pretraining"):
        raise CheckpointError(f"{path} holds a bare {kind}; explain/predict need a classifier or a pretraining model")
    names = list(model_config.get("class_names") or [])
    if kind == "classifier" and not names:
        names = [f"class_{i}" for i in range(model.num_classes)]
    return InferenceModel(model, kind, model.spec, names, _run_stride(path))


def _run_stride(path: Path) -> int:
    """`data.stride` of the run config an export carries, else the default."""
    if not path.is_dir():
        return DEFAULT_STRIDE
    raw = json.loads((path / "config.json").read_text())
    run = raw.get("run_config") or {}
    return int((run.get("data") or {}).get("stride") or DEFAULT_STRIDE)


def class_index(model: InferenceModel, name: Optional[str], logits: torch.Tensor) -> int:
    """Index of class `name`, or the top class of `logits` (K,) when None."""
    if name is None:
        return int(logits.argmax())
    if name not in model.class_names:
        raise DataError(f"unknown class {name!r}; this model knows {model.class_names}")
    return model.class_names.index(name)


@dataclass
class Clip:
    video: torch.Tensor
    """uint8 `(C, T, S, S)`: the centre clip at the model's frames, stride and size."""
    frame_indices: list[int]
    """The source frame of every clip frame."""
    fps: float


def read_clip(path: str | Path, spec: ArchSpec, stride: int) -> Clip:
    """The centre clip of a video file (one temporal view, centre crop), as `tubelet predict` sees it."""
    from pretrain.data.augment.clips import ClipSettings, eval_views
    from pretrain.data.augment.sampling import uniform_clips
    from pretrain.data.video.decode import DecodeError, probe

    path = Path(path)
    try:
        data = path.read_bytes()
        info = probe(data)
        settings = ClipSettings(num_frames=spec.num_frames, stride=stride, size=spec.img_size)
        video = eval_views({"key": path.name, "meta": {}, "video": data}, settings, 1, 1, multi_view=False)[0]["video"]
    except (DecodeError, OSError, ValueError, IndexError) as error:
        raise DataError(f"{path}: not a video this tool can read ({error})") from None
    indices = uniform_clips(info.num_frames, spec.num_frames, stride, 1)[0]  # (T,)
    return Clip(video.contiguous(), [int(i) for i in np.asarray(indices)], info.fps)
