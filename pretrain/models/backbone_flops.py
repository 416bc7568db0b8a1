"""Analytic forward FLOPs of each backbone's encoder (`Backbone.flops` in `pretrain.models.backbones`).

Conventions as in `pretrain.models.flops`: a (m, k) x (k, n) matmul counts 2mkn; attention counts
QK^T and AV (4 * queries * keys * width); norms, softmax and activations are left out. Checked
against torch's FLOP counter in the tests. `tokens` are the patch tokens encoded (visible ones
when masked: T' slices x n positions under a tube mask).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pretrain.models.arch import ArchSpec


def linear_flops(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def attention_flops(groups: int, queries: int, keys: int, dim: int) -> int:
    """`groups` independent attentions (batch x heads folded in the width) of queries x keys."""
    return 4 * groups * queries * keys * dim


def joint_block_flops(tokens: int, dim: int, mlp_dim: int) -> int:
    """qkv, attention over all tokens, proj, MLP."""
    return (
        linear_flops(tokens, dim, 4 * dim)
        + attention_flops(1, tokens, tokens, dim)
        + 2 * linear_flops(tokens, dim, mlp_dim)
    )


def divided_block_flops(slices: int, positions: int, dim: int, mlp_dim: int) -> int:
    """TimeSformer block: temporal attention per position (qkv, attention, proj, temporal_fc),
    spatial attention per slice with a class-token copy, MLP on every token and the class token."""
    tokens = slices * positions
    temporal = linear_flops(tokens, dim, 5 * dim) + attention_flops(positions, slices, slices, dim)
    spatial_tokens = slices * (positions + 1)
    spatial = linear_flops(spatial_tokens, dim, 4 * dim) + attention_flops(
        slices, positions + 1, positions + 1, dim
    )
    return temporal + spatial + 2 * linear_flops(tokens + 1, dim, mlp_dim)


def joint_encoder_flops(spec: ArchSpec, tokens: int) -> int:
    """vit: joint attention over the tokens (and the class token, when there is one)."""
    blocks = spec.depth * joint_block_flops(tokens + int(spec.class_token), spec.dim, spec.mlp_dim)
    return linear_flops(tokens, spec.patch_dim, spec.dim) + blocks


def divided_encoder_flops(spec: ArchSpec, tokens: int) -> int:
    """timesformer: divided blocks over T' slices of tokens // T' positions."""
    slices = spec.grid[0]
    blocks = spec.depth * divided_block_flops(slices, tokens // slices, spec.dim, spec.mlp_dim)
    return linear_flops(tokens, spec.patch_dim, spec.dim) + blocks


def factorised_encoder_flops(spec: ArchSpec, tokens: int) -> int:
    """vivit: the spatial transformer per slice (with its class token), then the temporal one."""
    slices = spec.grid[0]
    spatial = slices * spec.depth * joint_block_flops(tokens // slices + 1, spec.dim, spec.mlp_dim)
    temporal = spec.temporal_depth * joint_block_flops(slices + 1, spec.dim, spec.mlp_dim)
    return linear_flops(tokens, spec.patch_dim, spec.dim) + spatial + temporal
