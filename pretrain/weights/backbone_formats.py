"""The TimeSformer / ViViT sources in the weights registry: Hugging Face TimeSformer and ViViT
folders, original facebookresearch TimeSformer `.pyth` files (readers in `backbone_folders`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import get_backbone
from pretrain.weights.backbone_folders import (
    converts_to_hf_backbone,
    hf_model_type,
    is_original_timesformer_file,
    read_hf_backbone,
    read_original_timesformer,
    save_hf_backbone,
)
from pretrain.weights.formats import Tensors, Weights, WeightsFormat


def _as_weights(read: Any, path: Path) -> Weights:
    state, model_config = read(path)  # the readers raise CheckpointError where a misfit is found
    return Weights(state, {**model_config, "family": "videomae"})


def save_hf_any(
    state: Tensors, model_config: dict[str, Any], out_dir: str | Path, save_videomae: Any
) -> Path:
    """`tubelet convert --to hf`: TimeSformer / ViViT layouts as their HF folders, else VideoMAE's."""
    spec = ArchSpec.from_dict(model_config)
    if converts_to_hf_backbone(spec):
        return save_hf_backbone(state, model_config, out_dir)  # CheckpointError where it cannot
    backbone = get_backbone(spec.backbone)
    if backbone.hf_model_type(spec) is None:
        raise CheckpointError(
            f"transformers has no {backbone.summary}: a {spec.backbone} backbone converts to a Tubelet "
            "export only"
        )
    return save_videomae(state, model_config, out_dir)


HF_BACKBONE_FORMAT = WeightsFormat(
    "hf-backbone",
    lambda path: hf_model_type(path) is not None,
    lambda path: _as_weights(read_hf_backbone, path),
    "a Hugging Face TimeSformer or ViViT folder (config.json model_type=timesformer|vivit)",
)
ORIGINAL_TIMESFORMER_FORMAT = WeightsFormat(
    "timesformer",
    is_original_timesformer_file,
    lambda path: _as_weights(read_original_timesformer, path),
    "an original facebookresearch TimeSformer .pyth",
)
