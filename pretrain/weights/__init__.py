"""Every source of weights, read and written in one place, safely (nothing loaded can run code).

Sources (detected from the path, tried in this order; see `formats` to add one):
- `stage`: a training checkpoint folder (`RUN/checkpoints/step-N`, `last`, a run folder, or the
  `state`/`state.ckpt` inside): DeepSpeed ZeRO 0-3 shards (consolidated by `zero`) or a Lightning
  file, verified against the sizes and sha256 of its `meta.json`;
- `tubelet`: our export, `model.safetensors` + `config.json`;
- `hf`: a Hugging Face VideoMAE `save_pretrained` folder;
- `lightning`: a bare Lightning `.ckpt` of a Tubelet run;
- `hf-backbone`: a Hugging Face TimeSformer or ViViT folder (`backbone_formats`);
- `timesformer`: an original facebookresearch TimeSformer `.pyth`;
- `videomae`: an original VideoMAE / VideoMAE V2 `.pth` (or a raw state dict `.safetensors`).

Torch pickles are read only by `safe_load.safe_torch_load` (weights_only=True + a minimal allow-list).
Pure torch + safetensors: no Lightning, DeepSpeed, Ray or W&B here (train and evaluate build on it).
"""

from __future__ import annotations

from pretrain.errors import CheckpointError
from pretrain.weights.backbone_formats import HF_BACKBONE_FORMAT, ORIGINAL_TIMESFORMER_FORMAT
from pretrain.weights.build import build_model, build_weights, register_family
from pretrain.weights.convert import convert_weights, export_checkpoint
from pretrain.weights.export import EXPORT_FORMAT, describe, save_export, write_export
from pretrain.weights.formats import (
    FORMATS,
    Weights,
    WeightsFormat,
    detect_format,
    find_format,
    read_weights,
    register_format,
)
from pretrain.weights.pretrained import Finetuned, from_pretrained, load_encoder, load_finetuned
from pretrain.weights.stage_checkpoint import LIGHTNING_FORMAT, STAGE_FORMAT
from pretrain.weights.videomae_hf import HF_VIDEOMAE_FORMAT, save_hf
from pretrain.weights.videomae_pth import VIDEOMAE_FILE_FORMAT

for _format in (
    STAGE_FORMAT,
    EXPORT_FORMAT,
    HF_VIDEOMAE_FORMAT,
    HF_BACKBONE_FORMAT,
    LIGHTNING_FORMAT,
    ORIGINAL_TIMESFORMER_FORMAT,
    VIDEOMAE_FILE_FORMAT,
):
    if _format not in FORMATS:
        register_format(_format)


def load_weights(path):  # noqa: ANN001, ANN201 (see read_weights)
    """(state dict in our naming, flat model config) of any supported source."""
    weights = read_weights(path)
    return weights.state, weights.model_config


__all__ = [
    "CheckpointError",
    "Finetuned",
    "Weights",
    "WeightsFormat",
    "build_model",
    "build_weights",
    "convert_weights",
    "describe",
    "detect_format",
    "export_checkpoint",
    "find_format",
    "from_pretrained",
    "load_encoder",
    "load_finetuned",
    "load_weights",
    "read_weights",
    "register_family",
    "register_format",
    "save_export",
    "save_hf",
    "write_export",
]
