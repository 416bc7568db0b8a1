"""Transformer layers every backbone shares, and `Encoder`, the interface of every backbone's encoder.

Parameter names follow the original VideoMAE code (`patch_embed.proj`, `blocks.i.attn.qkv`,
`attn.q_bias`, `attn.v_bias`, `mlp.fc1`, ...), so its `.pth` files load by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from pretrain.pixels import CHANNELS

if TYPE_CHECKING:  # specs are only read here: the encoder modules stay below arch (no import cycle)
    from pretrain.models.arch import ArchSpec


def sinusoid_position_table(num_positions: int, dim: int) -> torch.Tensor:
    """Fixed sin-cos table `(num_positions, dim)`, computed like VideoMAE's
    `get_sinusoid_encoding_table`: angle = pos / 10000^(2*(j//2)/dim) in float64, sin on even
    columns, cos on odd ones, then cast to float32."""
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    exponents = 2 * (torch.arange(dim) // 2).to(torch.float64) / dim  # (D,)
    angles = positions / torch.pow(torch.tensor(10000.0, dtype=torch.float64), exponents)  # (N, D)
    angles[:, 0::2] = torch.sin(angles[:, 0::2])
    angles[:, 1::2] = torch.cos(angles[:, 1::2])
    return angles.float()


class TubeletEmbed(nn.Module):
    """Conv3d tubelet embedding applied as one matmul on already patchified tokens, so only the
    tokens the encoder sees are embedded. The weight keeps the Conv3d shape (and name) of the
    reference implementations; flattened it matches the channel-first patch layout."""

    def __init__(self, dim: int, tubelet: int, patch: int):
        super().__init__()
        self.proj = nn.Conv3d(CHANNELS, dim, (tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)  # (B, n, D)


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv matmul; q and v have biases, k has none
    (VideoMAE's `q_bias`/`v_bias`), or with `key_bias` one plain `qkv.bias` (TimeSformer, ViViT)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = True, key_bias: bool = False):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias and key_bias)
        self.q_bias: nn.Parameter | None
        self.v_bias: nn.Parameter | None
        self.k_bias: torch.Tensor
        if qkv_bias and not key_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
            self.register_buffer("k_bias", torch.zeros(dim), persistent=False)
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, query_from: int = 0
    ) -> torch.Tensor:
        """x (B, N, D) -> (B, N - query_from, D): every token is a key/value, only tokens from
        `query_from` on are queries (the rest's outputs would be thrown away)."""
        b, n, d = x.shape
        # k_bias is a buffer: DeepSpeed's bf16 engine casts parameters only, so follow q_bias's dtype
        bias = (
            self.qkv.bias
            if self.q_bias is None or self.v_bias is None
            else torch.cat([self.q_bias, self.k_bias.to(self.q_bias.dtype), self.v_bias])
        )
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, N, 3D)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, N, hd)
        out = F.scaled_dot_product_attention(
            q[:, :, query_from:], k, v, attn_mask=attn_mask
        )  # (B, H, Nq, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n - query_from, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, gelu_approximate: str = "none"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate=gelu_approximate)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples, rescaling the kept ones."""

    def __init__(self, prob: float = 0.0):
        super().__init__()
        self.prob = prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(
        self,
        dim: int,
        heads: int,
        mlp_dim: int,
        qkv_bias: bool = True,
        drop_path: float = 0.0,
        norm_eps: float = 1e-6,
        key_bias: bool = False,
        gelu_approximate: str = "none",
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, heads, qkv_bias, key_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_dim, gelu_approximate)
        self.drop_path = DropPath(drop_path)

    @classmethod
    def encoder_block(cls, spec: ArchSpec, drop_path: float = 0.0, **extra: Any) -> Block:
        """A block of the encoder `spec` describes (its width, heads, biases, activation)."""
        return cls(
            spec.dim,
            spec.heads,
            spec.mlp_dim,
            spec.qkv_bias,
            drop_path,
            spec.norm_eps,
            spec.key_bias,
            spec.gelu_approximate,
            **extra,
        )

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, query_from: int = 0
    ) -> torch.Tensor:
        """x (B, N, D) -> (B, N - query_from, D); see `Attention.forward` for `query_from`."""
        x = x[:, query_from:] + self.drop_path(self.attn(self.norm1(x), attn_mask, query_from))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def run_blocks(
    blocks: nn.ModuleList,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    grad_checkpointing: bool = False,
    keep_from: int = 0,
) -> torch.Tensor:
    """Apply blocks in order and return the tokens from `keep_from` on (B, N - keep_from, D); the
    last block computes outputs only for those. With checkpointing, activations are recomputed
    in backward."""
    use_checkpoint = grad_checkpointing and torch.is_grad_enabled()
    for i, block in enumerate(blocks):
        query_from = keep_from if i == len(blocks) - 1 else 0
        if use_checkpoint:
            x = checkpoint(block, x, attn_mask, query_from, use_reentrant=False)
        else:
            x = block(x, attn_mask, query_from)
    return x


class Encoder(nn.Module):
    """Tubelet embedding + position tables + blocks (+ final norm) on any subset of tokens.

    The encoder interface every backbone shares (`pretrain.models.backbones`): `forward(patches,
    index)` returns `(B, num_prefix_tokens + n, D)` (class token first when there is one),
    `layer_id(name)` / `num_layers` for layer-wise lr decay, `init_embeddings()` after the model's
    generic init. A backbone's encoder defines `embed_positions` and `forward`."""

    num_prefix_tokens = 0

    def __init__(
        self,
        spec: ArchSpec,
        drop_path: float = 0.0,
        final_norm: bool = True,
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        self.spec = spec
        self.grad_checkpointing = grad_checkpointing
        self.patch_embed = TubeletEmbed(spec.dim, spec.tubelet_size, spec.patch_size)
        self.embed_positions()
        rates = torch.linspace(0, drop_path, spec.depth, device="cpu").tolist()  # deeper blocks drop more
        self.blocks = nn.ModuleList(self.make_block(rate) for rate in rates)
        self.norm = nn.LayerNorm(spec.dim, eps=spec.norm_eps) if final_norm else nn.Identity()

    def embed_positions(self) -> None:
        """Create the position tables (and class tokens) of this backbone."""
        raise NotImplementedError(f"{type(self).__name__} defines no position tables")

    def make_block(self, drop_path: float) -> nn.Module:
        return Block.encoder_block(self.spec, drop_path)

    def init_embeddings(self) -> None:
        """Learned tokens and tables after the model's generic init (none by default)."""

    @property
    def num_layers(self) -> int:
        """Layers for layer-wise lr decay: the embedding, the blocks, the head."""
        return self.spec.depth + 2

    def layer_id(self, name: str) -> int:
        """Name inside the encoder -> 0 for embeddings, i + 1 for block i, num_layers - 1 otherwise."""
        if name.startswith("blocks."):
            return int(name.split(".")[1]) + 1
        if name.startswith(("patch_embed", "pos_embed", "cls_token", "time_embed")):
            return 0
        return self.num_layers - 1

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return run_blocks(self.blocks, x, grad_checkpointing=self.grad_checkpointing)

    def forward(self, patches: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """patches (B, n, patch_dim) of the tokens at `index` (B, n) (all N tokens if None)
        -> (B, num_prefix_tokens + n, D)."""
        raise NotImplementedError(f"{type(self).__name__} defines no forward")
