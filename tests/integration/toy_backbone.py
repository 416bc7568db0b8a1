"""A backbone added from outside the package, in one module: attention within each time slice only
(no temporal mixing at all), learned space (H', W') and time (T') tables, visible tokens under a tube
mask. Its whole description is `SLICES`; registering it is one line (`BACKBONES["slices"] = SLICES`)."""

from __future__ import annotations

import torch
from torch import nn

from pretrain.models.arch import ArchSpec
from pretrain.models.backbone_flops import joint_block_flops, linear_flops
from pretrain.models.backbones import Backbone
from pretrain.models.blocks import Encoder
from pretrain.models.patches import tube_positions


class SliceEncoder(Encoder):
    """Blocks run on each time slice's n visible tokens apart; output (B, T' * n, D)."""

    def embed_positions(self) -> None:
        self.pos_embed = nn.Parameter(torch.zeros(1, self.spec.spatial_tokens, self.spec.dim))
        self.time_embed = nn.Parameter(torch.zeros(1, self.spec.grid[0], self.spec.dim))

    def init_embeddings(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.time_embed, std=0.02)

    def forward(self, patches: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """patches (B, T' * n, patch_dim) of the tokens at `index` (B, T' * n), a (T', n) grid
        (all tokens if None) -> (B, T' * n, D)."""
        b, t, d = patches.shape[0], self.spec.grid[0], self.spec.dim
        x = self.patch_embed(patches).view(b, t, -1, d)  # (B, T', n, D)
        space = self.pos_embed[0] if index is None else self.pos_embed[0, tube_positions(index, self.spec)]
        x = x + space.unsqueeze(-3).to(x.dtype) + self.time_embed[0, :, None].to(x.dtype)  # (B, T', n, D)
        x = self.run(x.view(b * t, -1, d))  # (B * T', n, D): attention within a slice
        return self.norm(x.view(b, -1, d))


def slice_encoder_flops(spec: ArchSpec, tokens: int) -> int:
    slices = spec.grid[0]
    blocks = slices * spec.depth * joint_block_flops(tokens // slices, spec.dim, spec.mlp_dim)
    return linear_flops(tokens, spec.patch_dim, spec.dim) + blocks


SLICES = Backbone(
    "slices",
    "per-slice spatial attention encoder (a test backbone)",
    encoder=f"{__name__}:SliceEncoder",
    flops=slice_encoder_flops,
    learned_tables=lambda spec: {"pos_embed": (0, spec.grid[1:]), "time_embed": (0, spec.grid[:1])},
    tube_mask=True,
)
