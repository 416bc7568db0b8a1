"""The encoder of each backbone (`ArchSpec.backbone`), built by one function.

- vit: joint space-time attention over all (visible) tokens, fixed sin-cos positions (VideoMAE);
  with `class_token`, a class token and learned positions (ViViT Model 1, Hugging Face `VivitModel`).
- timesformer: divided space-time attention (`pretrain.models.timesformer`).
- vivit: ViViT's factorised encoder, Model 2 (`pretrain.models.vivit`).

All share `Encoder`'s interface: `forward(patches, index) -> (B, num_prefix_tokens + n, D)`.
"""

from __future__ import annotations

from pretrain.models.arch import ArchSpec
from pretrain.models.blocks import Encoder
from pretrain.models.timesformer import TimeSformerEncoder
from pretrain.models.vit import joint_encoder
from pretrain.models.vivit import FactorisedEncoder


def build_encoder(
    spec: ArchSpec, drop_path: float = 0.0, final_norm: bool = True, grad_checkpointing: bool = False
) -> Encoder:
    if spec.backbone == "timesformer":
        return TimeSformerEncoder(spec, drop_path, final_norm, grad_checkpointing)
    if spec.backbone == "vivit":
        return FactorisedEncoder(spec, drop_path, final_norm, grad_checkpointing)
    return joint_encoder(spec, drop_path, final_norm, grad_checkpointing)
