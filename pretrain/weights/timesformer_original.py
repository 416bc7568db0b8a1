"""Original facebookresearch/TimeSformer checkpoints (`.pyth`, `model_state` with keys
`model.blocks.N.temporal_attn.*`, `temporal_fc`, `temporal_norm1`, `pos_embed`, `time_embed`,
`head`) -> Tubelet. Our TimeSformer uses the same names, so this only moves the encoder under
`encoder.`, the final norm to `fc_norm` (classifier) and the Conv2d patch weight to a tubelet-1 Conv3d.
"""

from __future__ import annotations

from typing import Any

import torch

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec

Tensors = dict[str, torch.Tensor]
ENCODER_PARTS = ("patch_embed", "cls_token", "pos_embed", "time_embed", "blocks")
WRAPPERS = ("model_state", "state_dict", "model", "module")


def is_original_timesformer(state: Tensors) -> bool:
    return any(k.endswith("temporal_fc.weight") for k in state) and any(
        k.endswith("time_embed") for k in state
    )


def unwrap(obj: Any) -> Tensors:
    """The tensor dict inside `model_state` / `state_dict` wrappers, with the `model.` prefix dropped."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in WRAPPERS if k in obj), None)
        if key is None:
            raise CheckpointError(f"no TimeSformer state dict found (top-level keys: {sorted(obj)[:10]})")
        obj = obj[key]
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    patch = next((k for k in tensors if k.endswith("patch_embed.proj.weight")), None)
    if patch is None:
        raise CheckpointError("no patch_embed.proj.weight: not a TimeSformer checkpoint")
    prefix = patch[: -len("patch_embed.proj.weight")]
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def state_dict_from_original(obj: Any) -> Tensors:
    """Original TimeSformer state (possibly wrapped) -> ours: `classifier` layout when it has a head."""
    state = unwrap(obj)
    if "temporal_fc" not in " ".join(state):
        raise CheckpointError(
            "checkpoint has no temporal_fc: only divided_space_time TimeSformers are supported"
        )
    classifier = "head.weight" in state
    out: Tensors = {}
    for name, tensor in state.items():
        root = name.split(".")[0]
        if root in ENCODER_PARTS:
            out[f"encoder.{name}"] = tensor
        elif root == "norm":
            out[("fc_norm." if classifier else "encoder.norm.") + name.split(".", 1)[1]] = tensor
        elif root == "head":
            out[name] = tensor
        else:
            raise CheckpointError(f"original TimeSformer tensor {name!r} has no Tubelet counterpart")
    weight = out["encoder.patch_embed.proj.weight"]
    if weight.ndim == 4:
        out["encoder.patch_embed.proj.weight"] = weight.unsqueeze(2)  # (D, C, 1, p, p)
    return out


def spec_from_original(state: Tensors, num_frames: int = 8, norm_eps: float = 1e-6) -> ArchSpec:
    """Shapes from the tensors (the original keeps no config): width, depth, patch, grid."""
    patch = state["encoder.patch_embed.proj.weight"]  # (D, C, 1, p, p)
    dim, p = patch.shape[0], patch.shape[-1]
    side = int(round((state["encoder.pos_embed"].shape[1] - 1) ** 0.5))
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks."))
    return ArchSpec(
        backbone="timesformer",
        img_size=side * p,
        num_frames=state["encoder.time_embed"].shape[1] or num_frames,
        tubelet_size=1,
        patch_size=p,
        dim=dim,
        depth=depth,
        heads=max(1, dim // 64),
        mlp_dim=state["encoder.blocks.0.mlp.fc1.weight"].shape[0],
        key_bias=True,
        qkv_bias="encoder.blocks.0.attn.qkv.bias" in state,
        norm_eps=norm_eps,
        head_norm_eps=norm_eps,
    )
