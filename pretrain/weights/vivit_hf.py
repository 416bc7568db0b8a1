"""Hugging Face `VivitModel` / `VivitForVideoClassification` <-> Tubelet, both ways (pure torch).

HF's ViViT is the paper's Model 1, joint space-time attention: in Tubelet terms a `vit` with
`class_token` (a class token and learned position embeddings, 1 + T'H'W'), a plain bias on q, k and
v (`key_bias`), tanh-approximated GELU (`gelu_fast`) and inputs scaled to [-1, 1] (pixel mean and
std 0.5, carried in the spec so predict, evaluate and fine-tuning normalize as the weights expect).
Token order is (T', H', W') like ours. HF keeps q, k, v as separate linears (`layers.N.attention.
{q,k,v,o}_proj` in transformers 5; older files `encoder.layer.N.attention.attention.{query,key,value}`,
both read); ours is one fused `qkv`. transformers 5 names are written. `VivitModel`'s pooler
(dense + tanh on the class token) has no Tubelet counterpart: it travels as `pooler.dense.*`.
"""

from __future__ import annotations

from typing import Any

import torch

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import get_backbone
from pretrain.pixels import CHANNELS
from pretrain.weights.declared import checked_arch

MODEL_TYPE = "vivit"  # transformers' `model_type` of these folders

Tensors = dict[str, torch.Tensor]
KIND_BY_ARCHITECTURE = {"VivitModel": "encoder", "VivitForVideoClassification": "classifier"}
ARCHITECTURE_BY_KIND = {kind: arch for arch, kind in KIND_BY_ARCHITECTURE.items()}
HF_INPUT_MEAN = HF_INPUT_STD = (0.5, 0.5, 0.5)  # rescale to [-1, 1]
ACTIVATIONS = {
    "gelu_fast": "gelu_tanh",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu": "gelu",
}
POOLER = ("pooler.dense.weight", "pooler.dense.bias")

# (ours inside a block, HF transformers-5 name inside a layer, older HF name)
BLOCK_NAMES = (
    ("norm1", "layernorm_before", "layernorm_before"),
    ("attn.proj", "attention.o_proj", "attention.output.dense"),
    ("norm2", "layernorm_after", "layernorm_after"),
    ("mlp.fc1", "mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "mlp.fc2", "output.dense"),
)
QKV = (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value"))
OUTSIDE = (
    ("encoder.cls_token", "embeddings.cls_token"),
    ("encoder.pos_embed", "embeddings.position_embeddings"),
    ("encoder.patch_embed.proj.weight", "embeddings.patch_embeddings.projection.weight"),
    ("encoder.patch_embed.proj.bias", "embeddings.patch_embeddings.projection.bias"),
)


def _layer_prefixes(hf: Tensors, base: str) -> tuple[str, bool]:
    """HF layer prefix and whether it is the transformers-5 layout."""
    if any(k.startswith(f"{base}layers.") for k in hf):
        return f"{base}layers.", True
    return f"{base}encoder.layer.", False


def _get(hf: Tensors, name: str, used: set[str]) -> torch.Tensor:
    used.add(name)
    return hf[name]


def _block_from_hf(hf: Tensors, src: str, dst: str, current: bool, out: Tensors, used: set[str]) -> None:
    for ours, new, old in BLOCK_NAMES:
        for leaf in ("weight", "bias"):
            out[f"{dst}.{ours}.{leaf}"] = _get(hf, f"{src}.{new if current else old}.{leaf}", used)
    names = [f"{src}.attention.{new}" if current else f"{src}.attention.attention.{old}" for new, old in QKV]
    out[f"{dst}.attn.qkv.weight"] = torch.cat([_get(hf, f"{n}.weight", used) for n in names])
    if f"{names[0]}.bias" in hf:
        out[f"{dst}.attn.qkv.bias"] = torch.cat([_get(hf, f"{n}.bias", used) for n in names])


def state_dict_from_hf(hf: Tensors) -> Tensors:
    """HF ViViT state dict (either layout, encoder or classifier) -> ours; every HF tensor is used."""
    classifier = any(k.startswith("vivit.") for k in hf)
    base = "vivit." if classifier else ""
    layers, current = _layer_prefixes(hf, base)
    used: set[str] = set()
    out = {ours: _get(hf, base + theirs, used) for ours, theirs in OUTSIDE}
    depth = len({k[len(layers) :].split(".")[0] for k in hf if k.startswith(layers)})
    for i in range(depth):
        _block_from_hf(hf, f"{layers}{i}", f"encoder.blocks.{i}", current, out, used)
    norm = "fc_norm" if classifier else "encoder.norm"
    for leaf in ("weight", "bias"):
        out[f"{norm}.{leaf}"] = _get(hf, f"{base}layernorm.{leaf}", used)
        if classifier:
            out[f"head.{leaf}"] = _get(hf, f"classifier.{leaf}", used)
    out.update({name: _get(hf, name, used) for name in POOLER if name in hf})
    unknown = sorted(set(hf) - used)
    if unknown:
        raise CheckpointError(f"HF ViViT tensors without a Tubelet counterpart: {unknown[:5]}")
    return out


def state_dict_to_hf(ours: Tensors, kind: str) -> Tensors:
    """Our `vit` with a class token (`kind` encoder or classifier) -> transformers-5 ViViT names."""
    base = "vivit." if kind == "classifier" else ""
    out = {base + theirs: ours[mine] for mine, theirs in OUTSIDE}
    depth = len({k.split(".")[2] for k in ours if k.startswith("encoder.blocks.")})
    for i in range(depth):
        src, dst = f"encoder.blocks.{i}", f"{base}layers.{i}"
        for mine, new, _ in BLOCK_NAMES:
            for leaf in ("weight", "bias"):
                out[f"{dst}.{new}.{leaf}"] = ours[f"{src}.{mine}.{leaf}"]
        for leaf in ("weight", "bias"):
            if f"{src}.attn.qkv.{leaf}" in ours:
                for (new, _), part in zip(QKV, ours[f"{src}.attn.qkv.{leaf}"].chunk(3)):
                    out[f"{dst}.attention.{new}.{leaf}"] = part
    norm = "fc_norm" if kind == "classifier" else "encoder.norm"
    for leaf in ("weight", "bias"):
        out[f"{base}layernorm.{leaf}"] = ours[f"{norm}.{leaf}"]
        if kind == "classifier":
            out[f"classifier.{leaf}"] = ours[f"head.{leaf}"]
    out.update({name: ours[name] for name in POOLER if name in ours and kind == "encoder"})
    return out


def spec_from_hf_config(config: dict[str, Any]) -> ArchSpec:
    """ArchSpec of an HF `VivitConfig` dict: a `vit` with a class token, [-1, 1] inputs."""
    if config.get("num_channels", CHANNELS) != CHANNELS:
        raise CheckpointError(
            f"HF config num_channels={config['num_channels']}; only {CHANNELS} is supported"
        )
    act = config.get("hidden_act", "gelu_fast")
    if act not in ACTIVATIONS:
        raise CheckpointError(f"HF ViViT hidden_act={act!r}; supported: {sorted(ACTIVATIONS)}")
    tubelet, patch, patch_w = config.get("tubelet_size", [2, 16, 16])
    if patch != patch_w:
        raise CheckpointError(
            f"HF ViViT tubelet_size={config['tubelet_size']}: only square patches are supported"
        )
    eps = config.get("layer_norm_eps", 1e-6)
    return checked_arch(
        "HF ViViT config",
        backbone="vit",
        class_token=True,
        img_size=config.get("image_size", 224),
        num_frames=config.get("num_frames", 32),
        tubelet_size=tubelet,
        patch_size=patch,
        dim=config.get("hidden_size", 768),
        depth=config.get("num_hidden_layers", 12),
        heads=config.get("num_attention_heads", 12),
        mlp_dim=config.get("intermediate_size", 3072),
        qkv_bias=config.get("qkv_bias", True),
        key_bias=True,
        norm_eps=eps,
        head_norm_eps=eps,
        mlp_act=ACTIVATIONS[act],
        pixel_mean=HF_INPUT_MEAN,
        pixel_std=HF_INPUT_STD,
    )


def hf_config(spec: ArchSpec, kind: str, class_names: list[str] | None = None) -> dict[str, Any]:
    """HF `config.json` contents (model_type vivit) for our `vit` with a class token."""
    if get_backbone(spec.backbone).hf_model_type(spec) != MODEL_TYPE or not spec.key_bias:
        raise CheckpointError(
            "HF ViViT is joint attention with a class token and qkv biases: only a vit with "
            f"class_token and key_bias converts (got backbone {spec.backbone}, "
            f"class_token {spec.class_token}, key_bias {spec.key_bias})"
        )
    config: dict[str, Any] = {
        "architectures": [ARCHITECTURE_BY_KIND[kind]],
        "model_type": MODEL_TYPE,
        "image_size": spec.img_size,
        "num_frames": spec.num_frames,
        "tubelet_size": [spec.tubelet_size, spec.patch_size, spec.patch_size],
        "num_channels": CHANNELS,
        "hidden_size": spec.dim,
        "num_hidden_layers": spec.depth,
        "num_attention_heads": spec.heads,
        "intermediate_size": spec.mlp_dim,
        "hidden_act": {"gelu_tanh": "gelu_fast", "gelu": "gelu"}[spec.mlp_act],
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": spec.norm_eps,
        "qkv_bias": spec.qkv_bias,
        "dtype": "float32",
    }
    if kind == "classifier":
        names = list(class_names or [])
        config["id2label"] = {str(i): name for i, name in enumerate(names)}
        config["label2id"] = {name: i for i, name in enumerate(names)}
    return config
