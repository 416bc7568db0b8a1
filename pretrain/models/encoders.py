"""The encoder of each backbone (`ArchSpec.backbone`), built by one function.

- vit: joint space-time attention over all (visible) tokens, fixed sin-cos positions (VideoMAE);
  with `class_token`, a class token and learned positions (ViViT Model 1, Hugging Face `VivitModel`).
- timesformer: divided space-time attention (`pretrain.models.timesformer`).
- vivit: ViViT's factorised encoder, Model 2 (`pretrain.models.vivit`).

All share `Encoder`'s interface: `forward(patches, index) -> (B, num_prefix_tokens + n, D)`.
"""

from __future__ import annotations

from pretrain.models.timesformer import TimeSformerEncoder
from pretrain.models.vit import ArchSpec, Encoder
from pretrain.models.vivit import ClassTokenEncoder, FactorisedEncoder


def encoder_class(spec: ArchSpec) -> type[Encoder]:
    if spec.backbone == "timesformer":
        return TimeSformerEncoder
    if spec.backbone == "vivit":
        return FactorisedEncoder
    return ClassTokenEncoder if spec.class_token else Encoder


def build_encoder(
    spec: ArchSpec, drop_path: float = 0.0, final_norm: bool = True, grad_checkpointing: bool = False
) -> Encoder:
    return encoder_class(spec)(spec, drop_path, final_norm, grad_checkpointing)
