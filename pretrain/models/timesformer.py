"""TimeSformer (Bertasius et al., 2021): divided space-time attention, on visible tokens too.

Each block attends over time first (every spatial position across the time slices, with its own
norm, attention and output linear `temporal_fc`, added as a residual), then over space (within each
slice, with a copy of the class token per slice whose outputs are averaged), then the MLP, as in
facebookresearch/TimeSformer `Block` with `attention_type='divided_space_time'`. Parameter names
follow that code (`temporal_norm1`, `temporal_attn`, `temporal_fc`, `pos_embed`, `time_embed`,
`cls_token`), so its checkpoints load by renaming only the prefix.

Token order is ours, (T', H', W') flattened with the class token first; the original / Hugging
Face order is (H', W', T) (converted in `pretrain.weights.timesformer_hf`). The time slices are
`spec.grid[0]`, fixed by the spec: a clip of another length is refused (`check_video`) instead of
being mis-grouped. Under a tube mask the visible tokens form a (T', n) grid, so both attentions run
on the visible tokens only (n positions per slice, T' slices per position), through SDPA.
"""

from __future__ import annotations

import torch
from torch import nn

from pretrain.models.blocks import Attention, Block, Encoder
from pretrain.models.patches import tube_positions


class DividedBlock(Block):
    """Block with temporal attention before the spatial one; x is (B, 1 + T' * n, D), the class
    token first, then the tokens slice by slice (n per slice)."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_dim: int,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        key_bias: bool = True,
        gelu_approximate: str = "none",
        num_slices: int = 1,
    ):
        super().__init__(dim, heads, mlp_dim, qkv_bias, drop_path, norm_eps, key_bias, gelu_approximate)
        self.num_slices = num_slices
        self.temporal_norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.temporal_attn = Attention(dim, heads, qkv_bias, key_bias)
        self.temporal_fc = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, query_from: int = 0
    ) -> torch.Tensor:
        if attn_mask is not None or query_from:
            raise ValueError(
                "DividedBlock attends over whole (slice, position) grids: no attn_mask / query_from"
            )
        cls, tokens = x[:, :1], x[:, 1:]  # (B, 1, D), (B, T' * n, D)
        tokens = tokens + self.drop_path(self.temporal_fc(self.attend_time(tokens)))
        x = torch.cat([cls, tokens], dim=1) + self.drop_path(self.attend_space(cls, tokens))
        return x + self.drop_path(self.mlp(self.norm2(x)))  # (B, 1 + T' * n, D)

    def attend_time(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T' * n, D) -> (B, T' * n, D): each position attends over its T' slices."""
        b, length, d = tokens.shape
        t = self.num_slices
        x = tokens.view(b, t, length // t, d).transpose(1, 2).reshape(-1, t, d)  # (B * n, T', D)
        x = self.temporal_attn(self.temporal_norm1(x))
        return x.view(b, -1, t, d).transpose(1, 2).reshape(b, length, d)

    def attend_space(self, cls: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Residual (B, 1 + T' * n, D): tokens attend within their slice, each slice with a copy of
        the class token, whose T' outputs are averaged."""
        b, length, d = tokens.shape
        t = self.num_slices
        x = torch.cat([cls.expand(b, t, d).reshape(b * t, 1, d), tokens.reshape(b * t, -1, d)], dim=1)
        x = self.attn(self.norm1(x))  # (B * T', 1 + n, D)
        cls_out = x[:, 0].view(b, t, d).mean(dim=1, keepdim=True)  # (B, 1, D)
        return torch.cat([cls_out, x[:, 1:].reshape(b, length, d)], dim=1)


class TimeSformerEncoder(Encoder):
    """Per-slice patch embedding (tubelet `spec.tubelet_size`, 1 in the published model), learned
    spatial `pos_embed` (1 + H'W' with the class token) and `time_embed` (T'), divided blocks."""

    num_prefix_tokens = 1

    def embed_positions(self) -> None:
        dim = self.spec.dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.spec.spatial_tokens, dim))
        self.time_embed = nn.Parameter(torch.zeros(1, self.spec.grid[0], dim))

    def make_block(self, drop_path: float) -> nn.Module:
        return DividedBlock.encoder_block(self.spec, drop_path, num_slices=self.spec.grid[0])

    def init_embeddings(self) -> None:
        """The published init: N(0, 0.02) class token and positions, zero time table, and every
        `temporal_fc` but the first block's at zero (each block starts as spatial attention)."""
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.zeros_(self.time_embed)
        for block in [block for block in self.blocks if isinstance(block, DividedBlock)][1:]:
            nn.init.zeros_(block.temporal_fc.weight)
            nn.init.zeros_(block.temporal_fc.bias)

    def forward(self, patches: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """patches (B, T' * n, patch_dim) of the tokens at `index` (B, T' * n), a (T', n) grid
        (all tokens if None) -> (B, 1 + T' * n, D), the class token first."""
        b, t, d = patches.shape[0], self.spec.grid[0], self.spec.dim
        x = self.patch_embed(patches).view(b, t, -1, d)  # (B, T', n, D)
        space = (
            self.pos_embed[0, 1:]
            if index is None
            else self.pos_embed[0, 1 + tube_positions(index, self.spec)]
        )
        x = x + space.unsqueeze(-3).to(x.dtype) + self.time_embed[0, :, None].to(x.dtype)  # (B, T', n, D)
        cls = (self.cls_token + self.pos_embed[:, :1]).to(x.dtype).expand(b, -1, -1)  # (B, 1, D)
        x = torch.cat([cls, x.flatten(1, 2)], dim=1)  # (B, 1 + T' * n, D)
        return self.norm(self.run(x))
