"""Original VideoMAE / VideoMAE V2 weight files (`.pth`, or a raw state dict in `.safetensors`).

Pretraining keys `encoder.blocks.0...`, fine-tuning keys `blocks.0...`, possibly wrapped in `model` /
`module` / `state_dict` and with a key prefix; a raw HF state dict file (without its folder) is
recognised by its patch embedding name. Loaded with `safe_torch_load` (weights_only=True).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import BACKBONES, DEFAULT_BACKBONE
from pretrain.models.sizes import SIZES
from pretrain.weights.export import read_safetensors
from pretrain.weights.formats import Tensors, Weights, WeightsFormat, model_config
from pretrain.weights.safe_load import safe_torch_load
from pretrain.weights.videomae_hf import kind_of
from pretrain.weights.videomae_hf_naming import state_dict_from_hf

log = logging.getLogger(__name__)
FORMAT_NAME = "videomae"
WRAPPER_KEYS = ("model", "module", "state_dict")
HF_PATCH_KEY = "embeddings.patch_embeddings.projection.weight"
OUR_PATCH_KEY = "patch_embed.proj.weight"


def read_file(path: Path) -> Any:
    return read_safetensors(path) if path.suffix == ".safetensors" else safe_torch_load(path)


def read_videomae_file(path: Path) -> Weights:
    state = unwrap(read_file(path), path)
    return Weights(state, model_config(infer_spec(state), kind_of(state), FORMAT_NAME))


def unwrap(obj: Any, path: Path) -> Tensors:
    """Find the tensor dict inside wrappers and strip the key prefix before our names."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in WRAPPER_KEYS if k in obj), None)
        if key is None:
            raise CheckpointError(
                f"{path}: no state dict found (top-level keys: {sorted(map(str, obj))[:10]})"
            )
        obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    keys = [k for k, v in obj.items() if isinstance(v, torch.Tensor)]
    hf_key = next((k for k in keys if k.endswith(HF_PATCH_KEY)), None)
    if hf_key is not None:  # a raw HF state dict file without its folder
        prefix = hf_key[: -len(HF_PATCH_KEY)].removesuffix("videomae.")
        return state_dict_from_hf({k[len(prefix) :]: obj[k] for k in keys if k.startswith(prefix)})
    patch_key = next((k for k in keys if k.endswith(OUR_PATCH_KEY)), None)
    if patch_key is None:
        raise CheckpointError(f"{path}: no patch embedding weight (*{OUR_PATCH_KEY}) - not VideoMAE weights")
    prefix = patch_key[: -len(OUR_PATCH_KEY)]  # "encoder." (pretraining), "" (fine-tuning), + wrapper
    outer = prefix.removesuffix("encoder.")
    learned = any(k.endswith("cls_token") for k in keys)  # TimeSformer / ViViT: learned tables are weights
    state = {
        k[len(outer) :]: obj[k] for k in keys if k.startswith(outer) and (learned or "pos_embed" not in k)
    }
    if not prefix.endswith("encoder."):  # fine-tuning layout: encoder parts at the top level
        state = {
            (f"encoder.{k}" if k.split(".")[0] in ("patch_embed", "blocks", "norm") else k): v
            for k, v in state.items()
        }
    return {k: v for k, v in state.items() if not k.startswith("encoder.head.")}


def infer_backbone(state: Tensors, tubelet: int, patch: int) -> dict[str, Any]:
    """Backbone, its learned tables' grid (frames, image size) and biases, read from the tensors."""
    if "encoder.cls_token" not in state:
        return {}
    backbone = next(
        (
            b
            for b in BACKBONES.values()
            if b.marker and any(k.startswith(f"encoder.{b.marker}") for k in state)
        ),
        BACKBONES[DEFAULT_BACKBONE],
    )
    values: dict[str, Any] = {
        "backbone": backbone.name,
        "key_bias": "encoder.blocks.0.attn.qkv.bias" in state,
        "class_token": not backbone.class_token,  # a class token in a joint encoder: the vit's option
    }
    if backbone.class_token:  # learned space and time tables: their rows give the grid
        side = round((state["encoder.pos_embed"].shape[1] - 1) ** 0.5)
        slices = state["encoder.time_embed"].shape[1] - backbone.temporal_transformer  # its class row
        values.update(img_size=side * patch, num_frames=slices * tubelet)
    if backbone.temporal_transformer:
        values["temporal_depth"] = len(
            {k.split(".")[2] for k in state if k.startswith("encoder.temporal_blocks.")}
        )
    return values


def infer_spec(state: Tensors) -> ArchSpec:
    """Shapes from the tensors; head counts from the named size of the same width and depth
    (they cannot be read from weights), else width // 64. Frames and image size default to 16×224."""
    dim, _, tubelet, patch, _ = state["encoder.patch_embed.proj.weight"].shape
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks."))
    size = next((s for s in SIZES.values() if (s.dim, s.depth) == (dim, depth)), None)
    values: dict[str, Any] = dict(
        **infer_backbone(state, tubelet, patch),
        tubelet_size=tubelet,
        patch_size=patch,
        dim=dim,
        depth=depth,
        heads=size.heads if size else dim // 64,
        mlp_dim=state["encoder.blocks.0.mlp.fc1.weight"].shape[0],
        qkv_bias="encoder.blocks.0.attn.q_bias" in state,
        encoder_norm="encoder.norm.weight" in state,
    )
    if "decoder.head.weight" in state:
        decoder_dim = state["decoder.head.weight"].shape[1]
        decoder = next((s for s in SIZES.values() if s.decoder_dim == decoder_dim), None)
        values.update(
            decoder_dim=decoder_dim,
            decoder_depth=1 + max(int(k.split(".")[2]) for k in state if k.startswith("decoder.blocks.")),
            decoder_heads=decoder.decoder_heads if decoder else decoder_dim // 64,
            decoder_mlp_dim=state["decoder.blocks.0.mlp.fc1.weight"].shape[0],
        )
    log.info("inferred architecture from weight shapes: %s", values)
    return ArchSpec(**values)


def _is_weights_file(path: Path) -> bool:
    return path.is_file()


VIDEOMAE_FILE_FORMAT = WeightsFormat(
    FORMAT_NAME,
    _is_weights_file,
    read_videomae_file,
    "an original VideoMAE .pth (or a raw state dict .safetensors)",
)
