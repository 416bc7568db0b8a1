"""The joint space-time attention encoders (`backbone: vit`): every (visible) token attends to every
other one, a peer of `timesformer.py` (divided) and `vivit.py` (factorised).

- `JointEncoder`: VideoMAE's; the position table is fixed sin-cos, a non-persistent buffer: it is not
  in state dicts and is recomputed for any frame count or image size, so no interpolation is ever
  needed when loading weights.
- `ClassTokenEncoder` (`class_token=True`): a class token and learned positions, ViViT Model 1 as
  Hugging Face `VivitModel` has it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from pretrain.models.blocks import Encoder, sinusoid_position_table

if TYPE_CHECKING:
    from pretrain.models.arch import ArchSpec


class JointEncoder(Encoder):
    """Tubelet embedding + fixed sin-cos positions + blocks (+ final norm); output (B, n, D)."""

    pos_embed: torch.Tensor  # (N, D) buffer

    def embed_positions(self) -> None:
        """The position table: fixed sin-cos, not in state dicts."""
        self.register_buffer(
            "pos_embed", sinusoid_position_table(self.spec.num_tokens, self.spec.dim), persistent=False
        )

    def forward(self, patches: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """patches (B, n, patch_dim) of the tokens at `index` (B, n) (all N tokens if None)
        -> (B, n, D)."""
        pos = self.pos_embed if index is None else self.pos_embed[index]  # (N, D) or (B, n, D)
        x = self.patch_embed(patches) + pos.to(patches.dtype)
        return self.norm(self.run(x))


class ClassTokenEncoder(Encoder):
    """Joint attention with a class token and learned `pos_embed` (1 + N): ViViT Model 1 as
    Hugging Face `VivitModel` has it; output (B, 1 + n, D)."""

    num_prefix_tokens = 1

    def embed_positions(self) -> None:
        self.cls_token = nn.Parameter(torch.zeros(1, 1, self.spec.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.spec.num_tokens, self.spec.dim))

    def init_embeddings(self) -> None:
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def forward(self, patches: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        b = patches.shape[0]
        pos = self.pos_embed[0, 1:] if index is None else self.pos_embed[0, 1 + index]  # (N, D) or (B, n, D)
        x = self.patch_embed(patches) + pos.to(patches.dtype)  # (B, n, D)
        cls = (self.cls_token + self.pos_embed[:, :1]).to(x.dtype).expand(b, -1, -1)
        return self.norm(self.run(torch.cat([cls, x], dim=1)))  # (B, 1 + n, D)


def joint_encoder(
    spec: ArchSpec, drop_path: float = 0.0, final_norm: bool = True, grad_checkpointing: bool = False
) -> Encoder:
    """The vit backbone's encoder: with a class token and learned positions when `spec.class_token`."""
    cls = ClassTokenEncoder if spec.class_token else JointEncoder
    return cls(spec, drop_path, final_norm, grad_checkpointing)
