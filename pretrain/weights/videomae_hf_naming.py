"""Translation between Hugging Face transformers VideoMAE and Tubelet: parameter names and configs.

Tubelet's names are the original VideoMAE names (`encoder.blocks.0.attn.qkv.weight`, ...). HF keeps
q, k and v as separate linears (k without bias); ours is one fused `qkv` weight plus `q_bias` and
`v_bias`. HF files on disk (and on the hub) store the biases as `attention.attention.q_bias` /
`v_bias`; transformers 5 renames them to `query.bias` / `value.bias` in memory. Both are read; the
on-disk names are written, which every transformers version loads. Nothing here imports
transformers: configs are plain dicts, as in HF's `config.json`.
"""

from __future__ import annotations

from typing import Any

import torch

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.pixels import CHANNELS
from pretrain.weights.declared import checked_arch

HF_HEAD_NORM_EPS = 1e-5  # HF builds decoder.norm and fc_norm with LayerNorm's default eps
KIND_BY_ARCHITECTURE = {
    "VideoMAEForPreTraining": "pretraining",
    "VideoMAEForVideoClassification": "classifier",
    "VideoMAEModel": "encoder",
}
ARCHITECTURE_BY_KIND = {kind: arch for arch, kind in KIND_BY_ARCHITECTURE.items()}

# (our suffix, HF suffix) inside one block, except the fused qkv handled separately.
BLOCK_NAMES = (
    ("norm1", "layernorm_before"),
    ("attn.proj", "attention.output.dense"),
    ("norm2", "layernorm_after"),
    ("mlp.fc1", "intermediate.dense"),
    ("mlp.fc2", "output.dense"),
)
Tensors = dict[str, torch.Tensor]


def _block_from_hf(hf: Tensors, src: str, dst: str, out: Tensors) -> None:
    for ours, theirs in BLOCK_NAMES:
        for leaf in ("weight", "bias"):
            out[f"{dst}.{ours}.{leaf}"] = hf[f"{src}.{theirs}.{leaf}"]
    att = f"{src}.attention.attention"
    out[f"{dst}.attn.qkv.weight"] = torch.cat(
        [hf[f"{att}.query.weight"], hf[f"{att}.key.weight"], hf[f"{att}.value.weight"]]
    )
    for ours, legacy, current in (("q_bias", "q_bias", "query.bias"), ("v_bias", "v_bias", "value.bias")):
        for name in (f"{att}.{legacy}", f"{att}.{current}"):  # older checkpoints use the legacy name
            if name in hf:
                out[f"{dst}.attn.{ours}"] = hf[name]
                break


def _block_to_hf(ours: Tensors, src: str, dst: str, out: Tensors) -> None:
    for mine, theirs in BLOCK_NAMES:
        for leaf in ("weight", "bias"):
            out[f"{dst}.{theirs}.{leaf}"] = ours[f"{src}.{mine}.{leaf}"]
    att = f"{dst}.attention.attention"
    q, k, v = ours[f"{src}.attn.qkv.weight"].chunk(3)
    out[f"{att}.query.weight"], out[f"{att}.key.weight"], out[f"{att}.value.weight"] = q, k, v
    if f"{src}.attn.q_bias" in ours:  # on-disk HF names (transformers renames them on load)
        out[f"{att}.q_bias"] = ours[f"{src}.attn.q_bias"]
        out[f"{att}.v_bias"] = ours[f"{src}.attn.v_bias"]


def _count_blocks(keys: Any, prefix: str) -> int:
    ids = {int(k[len(prefix) :].split(".")[0]) for k in keys if k.startswith(prefix)}
    return max(ids) + 1 if ids else 0


def _module_pairs(base: str) -> list[tuple[str, str]]:
    """(our module, HF module) outside the blocks; `base` is HF's `videomae.` prefix or ''."""
    return [
        ("encoder.patch_embed.proj", f"{base}embeddings.patch_embeddings.projection"),
        ("encoder.norm", f"{base}layernorm"),
        ("decoder.norm", "decoder.norm"),
        ("decoder.head", "decoder.head"),
        ("fc_norm", "fc_norm"),
        ("head", "classifier"),
        ("encoder.blocks.", f"{base}encoder.layer."),
        ("decoder.blocks.", "decoder.decoder_layers."),
    ]


def _rename(src: Tensors, base: str, to_hf: bool) -> Tensors:
    out: Tensors = {}
    for ours, theirs in _module_pairs(base):
        old, new = (ours, theirs) if to_hf else (theirs, ours)
        if old.endswith("."):  # a stack of blocks
            convert = _block_to_hf if to_hf else _block_from_hf
            for i in range(_count_blocks(src, old)):
                convert(src, f"{old}{i}", f"{new}{i}", out)
            continue
        for leaf in ("weight", "bias"):
            if f"{old}.{leaf}" in src:
                out[f"{new}.{leaf}"] = src[f"{old}.{leaf}"]
    for name in ("encoder_to_decoder.weight", "mask_token"):  # same names on both sides
        if name in src:
            out[name] = src[name]
    return out


def state_dict_from_hf(hf: Tensors) -> Tensors:
    """HF VideoMAE state dict (any of the three heads, with or without `videomae.`) -> ours."""
    return _rename(hf, "videomae." if any(k.startswith("videomae.") for k in hf) else "", to_hf=False)


def state_dict_to_hf(ours: Tensors, kind: str) -> Tensors:
    """Our state dict -> HF names for `kind` (pretraining, classifier or encoder)."""
    return _rename(ours, "" if kind == "encoder" else "videomae.", to_hf=True)


def spec_from_hf_config(config: dict[str, Any], kind: str) -> ArchSpec:
    """ArchSpec of an HF `VideoMAEConfig` dict; refuses settings our model does not implement."""
    if config.get("num_channels", CHANNELS) != CHANNELS:
        raise CheckpointError(
            f"HF config num_channels={config['num_channels']}; only {CHANNELS} is supported"
        )
    if config.get("hidden_act", "gelu") != "gelu":
        raise CheckpointError(f"HF config hidden_act={config['hidden_act']!r}; only 'gelu' is supported")
    mean_pooling = config.get("use_mean_pooling", True)
    if kind == "classifier" and not mean_pooling:
        raise CheckpointError(
            "HF classifier with use_mean_pooling=false (first-token pooling) is not supported"
        )
    patch, image = config.get("patch_size", 16), config.get("image_size", 224)
    return checked_arch(
        "HF VideoMAE config",
        img_size=image if isinstance(image, int) else image[0],
        num_frames=config.get("num_frames", 16),
        tubelet_size=config.get("tubelet_size", 2),
        patch_size=patch if isinstance(patch, int) else patch[0],
        dim=config.get("hidden_size", 768),
        depth=config.get("num_hidden_layers", 12),
        heads=config.get("num_attention_heads", 12),
        mlp_dim=config.get("intermediate_size", 3072),
        decoder_dim=config.get("decoder_hidden_size", 384),
        decoder_depth=config.get("decoder_num_hidden_layers", 4),
        decoder_heads=config.get("decoder_num_attention_heads", 6),
        decoder_mlp_dim=config.get("decoder_intermediate_size", 1536),
        qkv_bias=config.get("qv_bias", True),
        norm_eps=config.get("layer_norm_eps", 1e-12),
        head_norm_eps=HF_HEAD_NORM_EPS,
        encoder_norm=not mean_pooling,
    )


def hf_config(
    spec: ArchSpec,
    kind: str,
    norm_pix_loss: bool = True,
    class_names: list[str] | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """HF `config.json` contents for a model of this spec and kind."""
    config: dict[str, Any] = {
        "architectures": [ARCHITECTURE_BY_KIND[kind]],
        "model_type": "videomae",
        "image_size": spec.img_size,
        "num_frames": spec.num_frames,
        "tubelet_size": spec.tubelet_size,
        "patch_size": spec.patch_size,
        "num_channels": CHANNELS,
        "hidden_size": spec.dim,
        "num_hidden_layers": spec.depth,
        "num_attention_heads": spec.heads,
        "intermediate_size": spec.mlp_dim,
        "decoder_hidden_size": spec.decoder_dim,
        "decoder_num_hidden_layers": spec.decoder_depth,
        "decoder_num_attention_heads": spec.decoder_heads,
        "decoder_intermediate_size": spec.decoder_mlp_dim,
        "qv_bias": spec.qkv_bias,
        "layer_norm_eps": spec.norm_eps,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "norm_pix_loss": norm_pix_loss,
        # mean pooling (classifier) means no final encoder norm; pretraining: norm iff encoder_norm
        "use_mean_pooling": kind == "classifier" or not spec.encoder_norm,
        "dtype": "float32",
    }
    if kind == "classifier":
        names = class_names or [f"LABEL_{i}" for i in range(num_classes or 0)]
        config["id2label"] = {str(i): name for i, name in enumerate(names)}
        config["label2id"] = {name: i for i, name in enumerate(names)}
    return config
