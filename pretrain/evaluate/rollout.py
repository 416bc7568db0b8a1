"""Attention rollout (Abnar & Zuidema, 2020) for every attention layout the encoders use, read from
outside the model: forward pre-hooks record each attention module's input, and its maps are
recomputed as softmax(q k^T / sqrt(d)), head-averaged (the model keeps running fused SDPA).

Each attention sublayer becomes a mixing matrix over the whole sequence, `0.5 A + 0.5 I` (the
residual), rows renormalized; the rollout is their product in order. The layouts:

- joint (ViT / VideoMAE, ViViT Model 1): one map over all tokens (and the class token if any);
- divided (TimeSformer): per block a temporal map for each spatial position (tokens only) then a
  spatial map per time slice, whose copy of the class token is averaged over the slices;
- factorised (ViViT Model 2): a spatial rollout within each slice (its own class token) and a
  temporal rollout over the slices' summaries, read out as the classifier pools: the mean of the
  output tokens, each its spatial output plus its slice's temporal output (`factorised_readout`).

The readout (joint, divided) is the class token's row where the encoder has one, else the mean of
all rows (mean pooling reads every output token equally). Returns scores over the N patch tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

RESIDUAL_WEIGHT = 0.5


def head_attention(attn: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The module's per-head attention on x (G, L, D), differentiable: (probs (G, H, L, L),
    values (G, H, L, hd)), so that `attn.proj` of probs @ values merged is the module's output."""
    g, length, d = x.shape
    heads = attn.heads
    bias = (
        attn.qkv.bias
        if attn.q_bias is None
        else torch.cat([attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias])
    )
    qkv = F.linear(x, attn.qkv.weight, bias)  # (G, L, 3D)
    q, k, v = qkv.view(g, length, 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # (G, H, L, hd)
    logits = q @ k.transpose(-1, -2) / math.sqrt(d // heads)  # (G, H, L, L)
    return logits.softmax(-1), v


def attention_probs(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The attention map the module computes on x (G, L, D), head-averaged: (G, L, L)."""
    return head_attention(attn, x)[0].mean(1)


@contextmanager
def recorded_inputs(encoder: nn.Module) -> Iterator[dict[nn.Module, torch.Tensor]]:
    """While active, maps every attention module of `encoder` to its last input (G, L, D)."""
    records: dict[nn.Module, torch.Tensor] = {}
    modules = [m for m in encoder.modules() if hasattr(m, "qkv") and hasattr(m, "heads")]
    handles = [
        m.register_forward_pre_hook(
            lambda module, args: records.__setitem__(module, args[0].detach().float())
        )
        for m in modules
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def mixing(attention: torch.Tensor) -> torch.Tensor:
    """(L, L) attention -> residual mixing 0.5 A + 0.5 I, rows summing to 1."""
    mixed = RESIDUAL_WEIGHT * attention + (1 - RESIDUAL_WEIGHT) * torch.eye(attention.shape[-1])
    return mixed / mixed.sum(-1, keepdim=True)


def readout(joint: torch.Tensor, prefix: int) -> torch.Tensor:
    """Rollout (L, L) -> scores over the patch tokens (N,)."""
    rows = joint[:prefix].mean(0) if prefix else joint.mean(0)
    return rows[prefix:]


def joint_rollout(blocks: nn.ModuleList, records: dict, prefix: int) -> torch.Tensor:
    joint = None
    for block in blocks:
        step = mixing(attention_probs(block.attn, records[block.attn])[0])  # (L, L), batch of one
        joint = step if joint is None else step @ joint
    return readout(joint, prefix)


def divided_maps(block: nn.Module, records: dict, slices: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One TimeSformer block's temporal and spatial maps embedded over the sequence (1 + N, 1 + N)."""
    temporal = attention_probs(block.temporal_attn, records[block.temporal_attn])  # (n, T', T')
    spatial = attention_probs(block.attn, records[block.attn])  # (T', 1 + n, 1 + n)
    # the class token takes no part in temporal attention; its copies' outputs are averaged
    return embed_divided(temporal, spatial, class_self=1.0, class_share=1.0 / slices)


def embed_divided(
    temporal: torch.Tensor, spatial: torch.Tensor, class_self: float, class_share: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position temporal maps (n, T', T') and per-slice spatial maps (T', 1 + n, 1 + n) ->
    the same maps over the whole sequence (1 + N, 1 + N), tokens in (T', n) order: the class token
    maps to itself with `class_self` in time, and its row in space is the slices' class rows
    times `class_share`."""
    slices, positions = spatial.shape[0], temporal.shape[0]
    size = 1 + slices * positions
    time_map = torch.zeros(size, size)
    time_map[0, 0] = class_self
    for j in range(positions):
        rows = 1 + j + positions * torch.arange(slices)  # token (t, j) for every slice t
        time_map[rows[:, None], rows[None, :]] = temporal[j]
    space_map = torch.zeros(size, size)
    for t in range(slices):
        rows = torch.cat([torch.zeros(1, dtype=torch.long), 1 + t * positions + torch.arange(positions)])
        space_map[rows[1:, None], rows[None, :]] = spatial[t, 1:]
        space_map[0, rows] += spatial[t, 0] * class_share
    return time_map, space_map


def divided_rollout(blocks: nn.ModuleList, records: dict, slices: int) -> torch.Tensor:
    joint = None
    for block in blocks:
        time_map, space_map = divided_maps(block, records, slices)
        step = mixing(space_map) @ mixing(time_map)
        joint = step if joint is None else step @ joint
    return readout(joint, prefix=1)


def factorised_rollout(encoder: nn.Module, records: dict) -> torch.Tensor:
    spatial = None  # (T', 1 + n, 1 + n): one rollout per slice
    for block in encoder.blocks:
        maps = attention_probs(block.attn, records[block.attn])  # (T', 1 + n, 1 + n)
        step = torch.stack([mixing(m) for m in maps])
        spatial = step if spatial is None else step @ spatial
    temporal = None  # (1 + T', 1 + T')
    for block in encoder.temporal_blocks:
        step = mixing(attention_probs(block.attn, records[block.attn])[0])
        temporal = step if temporal is None else step @ temporal
    slices, positions = spatial.shape[0], spatial.shape[1] - 1
    # the classifier averages the patch tokens: each output token's two parts weigh the same
    uniform = torch.full((slices, positions), 1.0 / (slices * positions))
    return factorised_readout(spatial, temporal, uniform, torch.full((slices,), 1.0 / slices))


def factorised_readout(
    spatial: torch.Tensor, temporal: torch.Tensor, token_weights: torch.Tensor, slice_weights: torch.Tensor
) -> torch.Tensor:
    """ViViT's factorised encoder read as its classifier reads it, the mean of the output tokens
    `spatial[t, j] + temporal[t]`: spatial mixing (T', 1 + n, 1 + n) per slice, temporal mixing
    (1 + T', 1 + T') over the slice summaries, a weight per output token's spatial part (T', n)
    and per slice's temporal part (T',) -> scores over the patch tokens (T' * n,)."""
    direct = (token_weights[:, :, None] * spatial[:, 1:, 1:]).sum(1)  # (T', n): via their own slice
    over_time = slice_weights @ temporal[1:, 1:]  # (T',): the temporal parts <- each slice summary
    return (direct + over_time[:, None] * spatial[:, 0, 1:]).flatten()  # summary t <- its tokens


def rollout_scores(model: nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """video (1, C, T, H, W) normalized -> (logits (K,), scores over the N patch tokens (N,))."""
    encoder = model.encoder
    with torch.no_grad(), recorded_inputs(encoder) as records:
        logits = model(video)[0].float()
    if hasattr(encoder, "temporal_blocks"):
        return logits, factorised_rollout(encoder, records)
    if hasattr(encoder.blocks[0], "temporal_attn"):
        return logits, divided_rollout(encoder.blocks, records, model.spec.grid[0])
    return logits, joint_rollout(encoder.blocks, records, getattr(encoder, "num_prefix_tokens", 0))
