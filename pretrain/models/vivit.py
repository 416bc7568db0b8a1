"""ViViT (Arnab et al., 2021): the factorised encoder (Model 2). Model 1 (joint attention with a
class token and learned positions, Hugging Face `VivitModel`) is `vit.ClassTokenEncoder`.

Factorised encoder: a spatial transformer (`blocks`, `spec.depth`) runs within each time slice,
with a class token per slice; the slices' class outputs (their summaries) go through a temporal
transformer (`temporal_blocks`, `spec.temporal_depth`) with its own class token, whose output is
the clip's (the classifier pools it). Under a tube mask every slice keeps the same n positions,
so the spatial transformer runs on the visible tokens only.

Temporal context for the decoder (our choice; ViViT has no decoder): the spatial transformer never
mixes slices, so a patch token's spatial output knows nothing of other time slices or even of its
own slice's place in time. Each patch token therefore leaves the encoder as its spatial output
plus the temporal transformer's output for its slice (`tokens[t, j] = spatial[t, j] + temporal[t]`):
the decoder sees, per token, what it shows and what the clip around it does over time, and the
reconstruction loss trains the temporal transformer through every visible token. Adding (rather
than concatenating) keeps the width D, so the VideoMAE decoder stays as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from pretrain.models.blocks import Block, Encoder, run_blocks
from pretrain.models.patches import tube_positions

if TYPE_CHECKING:
    from pretrain.models.arch import ArchSpec


class FactorisedEncoder(Encoder):
    """ViViT Model 2 on any tube-masked subset of tokens; output (B, 1 + T' * n, D)."""

    num_prefix_tokens = 1

    def __init__(
        self,
        spec: ArchSpec,
        drop_path: float = 0.0,
        final_norm: bool = True,
        grad_checkpointing: bool = False,
    ):
        super().__init__(spec, drop_path, final_norm, grad_checkpointing)
        self.spatial_norm = nn.LayerNorm(spec.dim, eps=spec.norm_eps)
        rates = torch.linspace(0, drop_path, spec.temporal_depth, device="cpu").tolist()
        self.temporal_blocks = nn.ModuleList(Block.encoder_block(spec, rate) for rate in rates)

    def embed_positions(self) -> None:
        dim, (slices, *_) = self.spec.dim, self.spec.grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.spec.spatial_tokens, dim))
        self.temporal_cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.time_embed = nn.Parameter(torch.zeros(1, 1 + slices, dim))

    def init_embeddings(self) -> None:
        for table in (self.cls_token, self.pos_embed, self.temporal_cls_token, self.time_embed):
            nn.init.trunc_normal_(table, std=0.02)

    @property
    def num_layers(self) -> int:
        return self.spec.depth + self.spec.temporal_depth + 2

    def layer_id(self, name: str) -> int:
        """Spatial blocks 1..depth (its norm with the last), temporal blocks after them."""
        if name.startswith("temporal_blocks."):
            return self.spec.depth + 1 + int(name.split(".")[1])
        if name.startswith("spatial_norm"):
            return self.spec.depth
        if name.startswith("temporal_cls_token"):
            return 0
        return super().layer_id(name)

    def forward(self, patches: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """patches (B, T' * n, patch_dim) of the tokens at `index` (B, T' * n), a (T', n) grid
        (all tokens if None) -> (B, 1 + T' * n, D), the clip's class token first."""
        b, t, d = patches.shape[0], self.spec.grid[0], self.spec.dim
        x = self.patch_embed(patches).view(b * t, -1, d)  # (B * T', n, D)
        space = (
            self.pos_embed[0, 1:]
            if index is None
            else self.pos_embed[0, 1 + tube_positions(index, self.spec)]
        )
        if index is not None:
            space = space.repeat_interleave(t, dim=0)  # (B * T', n, D)
        cls = (self.cls_token + self.pos_embed[:, :1]).to(x.dtype).expand(b * t, -1, -1)
        x = torch.cat([cls, x + space.to(x.dtype)], dim=1)  # (B * T', 1 + n, D)
        x = self.spatial_norm(self.run(x))
        summary = x[:, 0].view(b, t, d)  # (B, T', D)
        z = torch.cat([self.temporal_cls_token.to(x.dtype).expand(b, -1, -1), summary], dim=1)
        z = run_blocks(
            self.temporal_blocks, z + self.time_embed.to(x.dtype), grad_checkpointing=self.grad_checkpointing
        )  # (B, 1 + T', D)
        tokens = x[:, 1:].view(b, t, -1, d) + z[:, 1:, None]  # (B, T', n, D): temporal context added
        return self.norm(torch.cat([z[:, :1], tokens.flatten(1, 2)], dim=1))
