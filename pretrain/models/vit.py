"""Video ViT parts shared by the pretraining model and the classifier (pure PyTorch).

Token order everywhere is (T', H', W') flattened, the order of a Conv3d patch embedding. Inside the
model a token's pixels are laid out channel-first `(channel, tubelet, patch, patch)`: the Conv3d
weight order, so the embedding is one matmul with the flattened weight, and each channel's pixels
are contiguous for the per-cube statistics of the loss. One patchify of the video serves both.
Predictions use VideoMAE's / Hugging Face's `(tubelet, patch, patch, channel)` order.

Parameter names follow the original VideoMAE code (`patch_embed.proj`, `blocks.i.attn.qkv`,
`attn.q_bias`, `attn.v_bias`, `mlp.fc1`, ...), so its `.pth` files load by name. The position
table is fixed sin-cos, a non-persistent buffer: it is not in state dicts and is recomputed for
any frame count or image size, so no interpolation is ever needed when loading weights.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from pretrain.models.pixels import IMAGENET_MEAN, IMAGENET_STD, token_grid
from pretrain.models.sizes import BACKBONES, SIZES

CHANNELS = 3
MLP_ACTIVATIONS = {"gelu": "none", "gelu_tanh": "tanh"}  # name -> nn.GELU(approximate=...)


@dataclass(frozen=True)
class ArchSpec:
    """Everything that fixes the shapes of the weights and inputs; saved with every export."""

    img_size: int = 224
    num_frames: int = 16
    tubelet_size: int = 2
    patch_size: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_dim: int = 3072
    decoder_dim: int = 384
    decoder_depth: int = 4
    decoder_heads: int = 6
    decoder_mlp_dim: int = 1536
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    """LayerNorm eps inside blocks and of the encoder's final norm (HF `layer_norm_eps`)."""
    head_norm_eps: float = 1e-6
    """LayerNorm eps of the decoder's final norm and the classifier's fc_norm (HF fixes 1e-5)."""
    encoder_norm: bool = True
    """Final LayerNorm on the pretraining encoder's output (HF: `not use_mean_pooling`)."""
    backbone: str = "vit"
    """Encoder family: vit (joint space-time attention), timesformer (divided), vivit (factorised
    encoder, ViViT Model 2); see `pretrain.models.encoders`."""
    temporal_depth: int = 0
    """vivit: blocks of the temporal transformer over the time slices' summaries."""
    class_token: bool = False
    """vit only: a class token and learned position embeddings (HF ViViT, Model 1) instead of the
    fixed sin-cos table; timesformer and vivit always have both, as their published weights do."""
    key_bias: bool = False
    """One fused qkv bias including the key (TimeSformer, ViViT) instead of VideoMAE's q/v biases."""
    mlp_act: str = "gelu"
    """MLP activation: gelu (exact) or gelu_tanh (HF ViViT's `gelu_fast`)."""
    pixel_mean: tuple[float, float, float] = IMAGENET_MEAN
    """Per-channel mean the input video is normalized with (travels with the weights)."""
    pixel_std: tuple[float, float, float] = IMAGENET_STD
    """Per-channel std the input video is normalized with ([-1, 1] inputs: 0.5, 0.5, 0.5)."""

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; expected one of {list(BACKBONES)}")
        if self.mlp_act not in MLP_ACTIVATIONS:
            raise ValueError(f"unknown mlp_act {self.mlp_act!r}; expected one of {sorted(MLP_ACTIVATIONS)}")
        if self.backbone == "vivit" and self.temporal_depth < 1:
            raise ValueError(f"backbone vivit needs temporal_depth >= 1, got {self.temporal_depth}")
        object.__setattr__(self, "pixel_mean", tuple(float(v) for v in self.pixel_mean))
        object.__setattr__(self, "pixel_std", tuple(float(v) for v in self.pixel_std))

    @classmethod
    def from_size(
        cls,
        size: str,
        img_size: int = 224,
        num_frames: int = 16,
        tubelet_size: int = 2,
        patch_size: int | None = None,
        backbone: str = "vit",
        temporal_depth: int | None = None,
        **overrides: Any,
    ) -> ArchSpec:
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; expected one of {sorted(SIZES)}")
        s = SIZES[size]
        if backbone == "vivit":
            overrides["temporal_depth"] = temporal_depth or s.temporal_depth
        overrides.setdefault("key_bias", backbone != "vit")  # TimeSformer / ViViT: plain qkv bias
        return cls(
            backbone=backbone,
            img_size=img_size,
            num_frames=num_frames,
            tubelet_size=tubelet_size,
            patch_size=patch_size or s.patch_size,
            dim=s.dim,
            depth=s.depth,
            heads=s.heads,
            mlp_dim=int(s.dim * s.mlp_ratio),
            decoder_dim=s.decoder_dim,
            decoder_depth=s.decoder_depth,
            decoder_heads=s.decoder_heads,
            decoder_mlp_dim=int(s.decoder_dim * s.mlp_ratio),
            **overrides,
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ArchSpec:
        """Build from a dict that may hold other keys too (they are ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def grid(self) -> tuple[int, int, int]:
        return token_grid(self.img_size, self.num_frames, self.patch_size, self.tubelet_size)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def spatial_tokens(self) -> int:
        """Token positions per time slice (H' * W')."""
        return math.prod(self.grid[1:])

    @property
    def has_class_token(self) -> bool:
        """A class token (and learned positions): pooled by the classifier instead of the mean."""
        return self.backbone != "vit" or self.class_token

    @property
    def patch_dim(self) -> int:
        """Pixels per token: tubelet * patch * patch * channels."""
        return self.tubelet_size * self.patch_size * self.patch_size * CHANNELS


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


def check_video(video: torch.Tensor, spec: ArchSpec) -> None:
    """A clip of another length would be mis-grouped into time slices: refuse it, naming both."""
    expected = (CHANNELS, spec.num_frames, spec.img_size, spec.img_size)
    if video.ndim != 5 or tuple(video.shape[1:]) != expected:
        frames = f" ({video.shape[2]} frames, the model takes {spec.num_frames})" if video.ndim == 5 else ""
        raise ValueError(
            f"video must have shape (B, C, T, H, W) = (B, {', '.join(map(str, expected))}); "
            f"got {tuple(video.shape)}{frames}"
        )


def patchify(video: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, C*tubelet*patch*patch), tokens in (T', H', W') order,
    pixels channel-first (runs of `patch` pixels stay contiguous, so the copy is cheap)."""
    b, c, t, h, w = video.shape
    x = video.view(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, tubelet, p, p)
    return x.reshape(b, -1, c * tubelet * patch * patch)


def unpatchify(patches: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """(B, N, C*tubelet*patch*patch) -> (B, C, T, H, W); the inverse of `patchify`."""
    b = patches.shape[0]
    (gt, gh, gw), t, p = spec.grid, spec.tubelet_size, spec.patch_size
    x = patches.reshape(b, gt, gh, gw, CHANNELS, t, p, p)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', t, H', p, W', p)
    return x.reshape(b, CHANNELS, gt * t, gh * p, gw * p)


def channels_last(patches: torch.Tensor) -> torch.Tensor:
    """(..., C*tpp) channel-first pixels -> (..., tpp*C), the prediction order."""
    return patches.unflatten(-1, (CHANNELS, -1)).transpose(-1, -2).flatten(-2)


def channels_first(patches: torch.Tensor) -> torch.Tensor:
    """(..., tpp*C) prediction order -> (..., C*tpp); the inverse of `channels_last`."""
    return patches.unflatten(-1, (-1, CHANNELS)).transpose(-1, -2).flatten(-2)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), index (B, n) long -> (B, n, D); whole rows copied with one index_select."""
    b, n, d = x.shape
    flat = (index + torch.arange(b, device=index.device)[:, None] * n).flatten()  # (B * n,)
    return x.reshape(b * n, d).index_select(0, flat).view(b, -1, d)


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
            if self.q_bias is None
            else torch.cat([self.q_bias, self.k_bias.to(self.q_bias.dtype), self.v_bias])
        )
        qkv = F.linear(x, self.qkv.weight, bias)  # (B, N, 3D)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, H, N, hd)
        out = F.scaled_dot_product_attention(
            q[:, :, query_from:], k, v, attn_mask=attn_mask
        )  # (B, H, Nq, hd)
        return self.proj(out.transpose(1, 2).reshape(b, n - query_from, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, act: str = "gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate=MLP_ACTIVATIONS[act])
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
        act: str = "gelu",
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, heads, qkv_bias, key_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, mlp_dim, act)
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
            spec.mlp_act,
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
    """Tubelet embedding + fixed positions + blocks (+ final norm) on any subset of tokens.

    The encoder interface every backbone shares (`pretrain.models.encoders`): `forward(patches,
    index)` returns `(B, num_prefix_tokens + n, D)` (class token first when there is one),
    `layer_id(name)` / `num_layers` for layer-wise lr decay, `init_embeddings()` after the model's
    generic init."""

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
        """The position table: fixed sin-cos, not in state dicts (subclasses learn theirs)."""
        self.register_buffer(
            "pos_embed", sinusoid_position_table(self.spec.num_tokens, self.spec.dim), persistent=False
        )

    def make_block(self, drop_path: float) -> nn.Module:
        return Block.encoder_block(self.spec, drop_path)

    def init_embeddings(self) -> None:
        """Learned tokens and tables after the model's generic init (none here: the table is fixed)."""

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
        -> (B, n, D)."""
        pos = self.pos_embed if index is None else self.pos_embed[index]  # (N, D) or (B, n, D)
        x = self.patch_embed(patches) + pos.to(patches.dtype)
        return self.norm(self.run(x))


def tube_positions(index: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """Spatial positions (B, n) of the tokens at `index` (B, T' * n) when they form a (T', n) grid,
    the same n positions in every time slice, as under a tube mask.

    Divided and factorised attention group tokens by slice and by position, so a mask hiding
    different positions in different slices cannot run on visible tokens only: a ValueError."""
    slices, positions, batch = spec.grid[0], spec.spatial_tokens, index.shape[0]
    if index.shape[1] % slices:
        raise ValueError(
            f"backbone {spec.backbone} needs a tube mask (mask.kind=tube): "
            f"{index.shape[1]} visible tokens do not fill {slices} time slices"
        )
    grid = index.view(batch, slices, -1)  # (B, T', n)
    spatial = grid % positions
    in_order = grid // positions == torch.arange(slices, device=index.device)[None, :, None]
    if not bool((spatial == spatial[:, :1]).all() & in_order.all()):
        raise ValueError(
            f"backbone {spec.backbone} needs a tube mask (mask.kind=tube): the visible "
            "tokens differ between time slices"
        )
    return spatial[:, 0]  # (B, n)
