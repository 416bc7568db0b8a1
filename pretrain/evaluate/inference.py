"""The light inference path shared by `explain`, `predict --stream`, `export` and `bench infer`:
one loader that turns a checkpoint into an eval-ready model, and one clip reader.

Imports torch, the models, the weights package and the decoder only (no Lightning, DeepSpeed, Ray
or W&B): every source (export, stage checkpoint, Hugging Face folder, original `.pth`) loads
through `pretrain.weights.from_pretrained`, with its class names and run config; an ONNX export
(fp32 or int8) loads as an onnxruntime-backed `OnnxClassifier` with the same call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pretrain.errors import CheckpointError, DataError
from pretrain.evaluate.onnx_model import OnnxClassifier, is_onnx_export, load_onnx_classifier
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import VideoClassifier
from pretrain.models.videomae import VideoMAE

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
    """An eval-ready classifier or pretraining model from any source `from_pretrained` reads."""
    from pretrain.weights import from_pretrained

    if not Path(path).exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    model = load_onnx_classifier(path) if is_onnx_export(path) else from_pretrained(path)
    if isinstance(model, VideoMAE):
        kind = "pretraining"
    elif isinstance(model, VideoClassifier | OnnxClassifier):
        kind = "classifier"
    else:
        raise CheckpointError(
            f"{path} holds a bare {type(model).__name__}; explain/predict need a classifier "
            "or a pretraining model"
        )
    names = list(model.class_names or []) if kind == "classifier" else []
    if kind == "classifier" and not names:
        names = [f"class_{i}" for i in range(model.num_classes)]
    stride = model.run_config.data.stride if model.run_config is not None else DEFAULT_STRIDE
    return InferenceModel(model, kind, model.spec, names, int(stride))


def class_index(model: InferenceModel, name: str | None, logits: torch.Tensor) -> int:
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
    from pretrain.data.shards.listing import regular_file_problem
    from pretrain.data.video.decode import DecodeError, probe

    path = Path(path)
    problem = regular_file_problem(path)  # a FIFO would block forever, /dev/zero fill memory
    if problem:
        raise DataError(f"{path}: {problem}")
    try:
        info = probe(path)  # the file is read as decoding needs it, never whole
        settings = ClipSettings(num_frames=spec.num_frames, stride=stride, size=spec.img_size)
        sample = {"key": path.name, "meta": {}, "video": path}
        video = eval_views(sample, settings, 1, 1, multi_view=False)[0]["video"]
    except (DecodeError, OSError, ValueError, IndexError) as error:
        raise DataError(f"{path}: not a video this tool can read ({error})") from None
    indices = uniform_clips(info.num_frames, spec.num_frames, stride, 1)[0]  # (T,)
    return Clip(video.contiguous(), [int(i) for i in np.asarray(indices)], info.fps)
