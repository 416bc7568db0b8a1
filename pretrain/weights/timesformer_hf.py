"""Hugging Face `TimesformerModel` / `TimesformerForVideoClassification` <-> Tubelet, both ways,
and the original facebookresearch/TimeSformer checkpoints -> Tubelet (pure torch, no transformers).

Our TimeSformer keeps the original code's parameter names (`blocks.i.temporal_fc`, ...; see
`pretrain.models.timesformer`); HF renamed them (temporal_fc -> temporal_dense, temporal_norm1 ->
temporal_layernorm, norm1/norm2 -> layernorm_before/after, mlp.fc1/fc2 -> intermediate.dense /
output.dense, head -> classifier). Both fuse q, k, v into one `qkv` linear with a bias, as ours.
HF's patch embedding is a Conv2d per frame: ours is a Conv3d of tubelet 1, the same numbers.

Token order differs, (H', W', T) in HF and the original, (T', H', W') in ours; no tensor depends
on it (positions and time tables are separate), only outputs do. HF groups tokens into frames by
`config.num_frames` and silently mis-groups a clip of another length; ours refuses it, naming
both frame counts (`pretrain.models.patches.check_video`).
"""

from __future__ import annotations

from typing import Any

import torch

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import get_backbone
from pretrain.pixels import CHANNELS
from pretrain.weights.declared import checked_arch

MODEL_TYPE = "timesformer"  # transformers' `model_type` of these folders

Tensors = dict[str, torch.Tensor]
KIND_BY_ARCHITECTURE = {"TimesformerModel": "encoder", "TimesformerForVideoClassification": "classifier"}
ARCHITECTURE_BY_KIND = {kind: arch for arch, kind in KIND_BY_ARCHITECTURE.items()}
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
}

# (ours inside a block, HF inside a layer); each with .weight and .bias
BLOCK_NAMES = (
    ("norm1", "layernorm_before"),
    ("attn.qkv", "attention.attention.qkv"),
    ("attn.proj", "attention.output.dense"),
    ("temporal_norm1", "temporal_layernorm"),
    ("temporal_attn.qkv", "temporal_attention.attention.qkv"),
    ("temporal_attn.proj", "temporal_attention.output.dense"),
    ("temporal_fc", "temporal_dense"),
    ("norm2", "layernorm_after"),
    ("mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "output.dense"),
)
EMBEDDINGS = (
    ("encoder.cls_token", "embeddings.cls_token"),
    ("encoder.pos_embed", "embeddings.position_embeddings"),
    ("encoder.time_embed", "embeddings.time_embeddings"),
)
PATCH = ("encoder.patch_embed.proj", "embeddings.patch_embeddings.projection")


def count_blocks(keys: Any, prefix: str) -> int:
    ids = {int(k[len(prefix) :].split(".")[0]) for k in keys if k.startswith(prefix)}
    return max(ids) + 1 if ids else 0


def _pairs(ours: Tensors | None, hf: Tensors | None, kind: str, base: str) -> list[tuple[str, str]]:
    """(our name, HF name) of every tensor; blocks counted on whichever side is given."""
    if ours is None and hf is None:
        raise ValueError("name pairs need our state dict or the HF one")
    keys = ours if ours is not None else {k[len(base) :] for k in hf or {}}
    depth = count_blocks(keys, "encoder.blocks." if ours is not None else "encoder.layer.")
    pairs = [(o, base + h) for o, h in EMBEDDINGS]
    pairs += [(f"{PATCH[0]}.{leaf}", f"{base}{PATCH[1]}.{leaf}") for leaf in ("weight", "bias")]
    for i in range(depth):
        pairs += [
            (f"encoder.blocks.{i}.{o}.{leaf}", f"{base}encoder.layer.{i}.{h}.{leaf}")
            for o, h in BLOCK_NAMES
            for leaf in ("weight", "bias")
        ]
    norm = "encoder.norm" if kind == "encoder" else "fc_norm"
    pairs += [(f"{norm}.{leaf}", f"{base}layernorm.{leaf}") for leaf in ("weight", "bias")]
    if kind == "classifier":
        pairs += [(f"head.{leaf}", f"classifier.{leaf}") for leaf in ("weight", "bias")]
    return pairs


def hf_kind(hf: Tensors) -> str:
    return "classifier" if any(k.startswith("timesformer.") for k in hf) else "encoder"


def state_dict_from_hf(hf: Tensors) -> Tensors:
    """HF TimeSformer state dict (encoder or classifier) -> ours. Missing optional tensors (qkv
    biases when `qkv_bias=false`) are skipped; unknown HF tensors raise (nothing is dropped)."""
    kind = hf_kind(hf)
    base = "timesformer." if kind == "classifier" else ""
    out: Tensors = {}
    for ours, theirs in _pairs(None, hf, kind, base):
        if theirs in hf:
            out[ours] = hf[theirs]
    patch = f"{PATCH[0]}.weight"
    out[patch] = out[patch].unsqueeze(2)  # Conv2d (D, C, p, p) -> Conv3d of tubelet 1 (D, C, 1, p, p)
    used = {theirs for _, theirs in _pairs(None, hf, kind, base)}
    unknown = sorted(set(hf) - used)
    if unknown:
        raise CheckpointError(f"HF TimeSformer tensors without a Tubelet counterpart: {unknown[:5]}")
    return out


def state_dict_to_hf(ours: Tensors, kind: str) -> Tensors:
    """Our TimeSformer state dict (`kind` encoder or classifier) -> HF names."""
    base = "timesformer." if kind == "classifier" else ""
    patch = f"{PATCH[0]}.weight"
    if ours[patch].shape[2] != 1:
        raise CheckpointError(
            f"HF TimeSformer embeds single frames; this model has tubelet_size={ours[patch].shape[2]}"
        )
    ours = {**ours, patch: ours[patch].squeeze(2)}
    return {theirs: ours[mine] for mine, theirs in _pairs(ours, None, kind, base) if mine in ours}


def spec_from_hf_config(config: dict[str, Any]) -> ArchSpec:
    """ArchSpec of an HF `TimesformerConfig` dict; refuses what our model does not implement."""
    if config.get("attention_type", "divided_space_time") != "divided_space_time":
        raise CheckpointError(
            f"HF TimeSformer attention_type={config['attention_type']!r}: only "
            "divided_space_time is a Tubelet timesformer (joint_space_time is a vit)"
        )
    if config.get("num_channels", CHANNELS) != CHANNELS:
        raise CheckpointError(
            f"HF config num_channels={config['num_channels']}; only {CHANNELS} is supported"
        )
    act = config.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise CheckpointError(f"HF config hidden_act={act!r}; supported: {sorted(ACTIVATIONS)}")
    eps = config.get("layer_norm_eps", 1e-6)
    return checked_arch(
        "HF TimeSformer config",
        backbone="timesformer",
        img_size=config.get("image_size", 224),
        num_frames=config.get("num_frames", 8),
        tubelet_size=1,
        patch_size=config.get("patch_size", 16),
        dim=config.get("hidden_size", 768),
        depth=config.get("num_hidden_layers", 12),
        heads=config.get("num_attention_heads", 12),
        mlp_dim=config.get("intermediate_size", 3072),
        qkv_bias=config.get("qkv_bias", True),
        key_bias=True,
        norm_eps=eps,
        head_norm_eps=eps,
        mlp_act=ACTIVATIONS[act],
    )


def hf_config(spec: ArchSpec, kind: str, class_names: list[str] | None = None) -> dict[str, Any]:
    """HF `config.json` contents (model_type timesformer) for our TimeSformer of this spec and kind."""
    if get_backbone(spec.backbone).hf_model_type(spec) != MODEL_TYPE or spec.tubelet_size != 1:
        raise CheckpointError(
            f"HF TimeSformer needs backbone timesformer with tubelet_size 1; got "
            f"{spec.backbone} with tubelet_size {spec.tubelet_size}"
        )
    if spec.head_norm_eps != spec.norm_eps and kind == "classifier":
        raise CheckpointError(
            f"HF TimeSformer uses one LayerNorm eps; this model has {spec.norm_eps} and "
            f"{spec.head_norm_eps} (fc_norm)"
        )
    config: dict[str, Any] = {
        "architectures": [ARCHITECTURE_BY_KIND[kind]],
        "model_type": MODEL_TYPE,
        "image_size": spec.img_size,
        "patch_size": spec.patch_size,
        "num_channels": CHANNELS,
        "num_frames": spec.num_frames,
        "hidden_size": spec.dim,
        "num_hidden_layers": spec.depth,
        "num_attention_heads": spec.heads,
        "intermediate_size": spec.mlp_dim,
        "hidden_act": {"gelu": "gelu", "gelu_tanh": "gelu_pytorch_tanh"}[spec.mlp_act],
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": spec.norm_eps,
        "qkv_bias": spec.qkv_bias,
        "attention_type": "divided_space_time",
        "drop_path_rate": 0,
        "dtype": "float32",  # transformers 5 declares it an int
    }
    if kind == "classifier":
        names = list(class_names or [])
        config["id2label"] = {str(i): name for i, name in enumerate(names)}
        config["label2id"] = {name: i for i, name in enumerate(names)}
    return config
