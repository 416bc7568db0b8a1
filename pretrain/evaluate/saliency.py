"""Space-time saliency over a model's token grid `(T', H', W')`, computed from outside the model.

- `attention_rollout`: forward pre-hooks on every encoder block's attention module record its input;
  the attention maps are recomputed from it as softmax(q k^T / sqrt(d)) (the model itself keeps
  running fused SDPA), averaged over heads, mixed with the identity for the residual path
  (0.5 A + 0.5 I, rows renormalized) and multiplied through the blocks (Abnar & Zuidema, 2020).
  A mean-pooled classifier reads every output token equally, so a token's score is its mean
  column of the product.
- `gradient_saliency`: Grad-CAM on the last block's output tokens: the class logit's gradient,
  averaged over tokens, weights each channel; a token scores ReLU(sum_d w_d x_d).
- `reconstruction_error`: for a pretraining (VideoMAE) model, each token's reconstruction error
  when it is hidden, over complementary tube masks that hide every token the same number of times.

Scores come back as float `(T', H', W')` summing to 1.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

RESIDUAL_WEIGHT = 0.5
RECONSTRUCTION_PASSES = 4
"""Complementary tube masks: each hides (passes - 1) / passes of the positions (0.75 with 4)."""


def encoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The encoder's transformer blocks (`model.encoder.blocks`)."""
    encoder = getattr(model, "encoder", model)
    blocks = getattr(encoder, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise TypeError(f"{type(model).__name__} has no encoder.blocks to explain")
    return blocks


def normalized(scores: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Non-negative scores (N,) -> (T', H', W') summing to 1 (uniform when all are zero)."""
    scores = scores.detach().float().clamp_min(0).reshape(grid)
    total = scores.sum()
    return scores / total if total > 0 else torch.full_like(scores, 1.0 / scores.numel())


@contextmanager
def recorded_attention_inputs(blocks: nn.ModuleList) -> Iterator[list[tuple[nn.Module, torch.Tensor]]]:
    """While active, every forward records (attention module, its input x (B, N, D)) in order."""
    records: list[tuple[nn.Module, torch.Tensor]] = []
    handles = [block.attn.register_forward_pre_hook(lambda module, args: records.append((module, args[0].detach())))
               for block in blocks]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


def attention_probs(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The attention map the module computes on x (B, N, D), head-averaged: (B, N, N)."""
    b, n, d = x.shape
    heads = attn.heads
    bias = attn.qkv.bias if attn.q_bias is None else torch.cat([attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias])
    qkv = F.linear(x, attn.qkv.weight, bias)  # (B, N, 3D)
    q, k, _ = qkv.view(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)  # (B, H, N, hd)
    logits = q @ k.transpose(-1, -2) / math.sqrt(d // heads)  # (B, H, N, N)
    return logits.softmax(-1).mean(1)


def rollout(maps: list[torch.Tensor]) -> torch.Tensor:
    """Head-averaged maps (N, N) in block order -> rollout (N, N): how much each output token
    draws on each input token through attention and the residual path."""
    eye = torch.eye(maps[0].shape[-1], dtype=maps[0].dtype)
    joint = eye
    for attention in maps:
        mixed = RESIDUAL_WEIGHT * attention + (1 - RESIDUAL_WEIGHT) * eye
        joint = (mixed / mixed.sum(-1, keepdim=True)) @ joint
    return joint


@torch.no_grad()
def attention_rollout(model: nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """video (1, C, T, H, W) normalized -> (logits (K,), scores (T', H', W'))."""
    blocks = encoder_blocks(model)
    with recorded_attention_inputs(blocks) as records:
        logits = model(video)[0].float()  # (K,)
    maps = [attention_probs(attn, x.float())[0] for attn, x in records]  # each (N, N)
    scores = rollout(maps).mean(0)  # (N,): mean pooling reads all output tokens equally
    return logits, normalized(scores, model.spec.grid)


def gradient_saliency(model: nn.Module, video: torch.Tensor, target: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Grad-CAM on the last block's tokens: video (1, C, T, H, W) -> (logits (K,), scores
    (T', H', W'), explained class). `target` None explains the top class."""
    captured: list[torch.Tensor] = []

    def keep(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        output.retain_grad()
        captured.append(output)

    handle = encoder_blocks(model)[-1].register_forward_hook(keep)
    try:
        with torch.enable_grad():
            logits = model(video.detach().requires_grad_(False))[0].float()  # (K,)
            target = int(logits.argmax()) if target is None else target
            logits[target].backward()
    finally:
        handle.remove()
    prefix = getattr(getattr(model, "encoder", model), "num_prefix_tokens", 0)  # a class token is not a place
    tokens, grad = captured[-1][0, prefix:].detach(), captured[-1].grad[0, prefix:]  # (N, D) each
    weights = grad.mean(0)  # (D,)
    scores = F.relu(tokens @ weights)  # (N,)
    model.zero_grad(set_to_none=True)
    return logits.detach(), normalized(scores, model.spec.grid), target


@torch.no_grad()
def reconstruction_error(model: nn.Module, video: torch.Tensor, seed: int = 0) -> tuple[float, torch.Tensor]:
    """A VideoMAE model's per-token error on video (1, C, T, H, W): (mean error, error map
    (T', H', W') summing to 1). Pass k hides every spatial position outside group k (a tube mask)."""
    from pretrain.models.vit import patchify

    spec = model.spec
    grid_t, grid_h, grid_w = spec.grid
    order = torch.randperm(grid_h * grid_w, generator=torch.Generator().manual_seed(seed))
    groups = torch.empty_like(order)
    groups[order] = torch.arange(order.numel()) % RECONSTRUCTION_PASSES  # position -> its group
    total = torch.zeros(spec.num_tokens)
    counts = torch.zeros(spec.num_tokens)
    patches = patchify(video, spec.tubelet_size, spec.patch_size)  # (1, N, C*tpp)
    for visible_group in range(RECONSTRUCTION_PASSES):
        mask = (groups != visible_group).repeat(grid_t)[None]  # (1, N) True = hidden, a tube mask
        output = model(video, mask)
        target_index = output.target_mask[0].nonzero().squeeze(1)  # (n,) ascending, as pred rows are
        target = model.targets(patches, target_index[None])  # (1, n, C, tpp)
        pred = output.pred_channel_first.float().unflatten(-1, (target.shape[2], -1))  # (1, n, C, tpp)
        error = (pred - target.float()).pow(2).mean((-2, -1))[0]  # (n,)
        total[target_index] += error
        counts[target_index] += 1
    per_token = total / counts.clamp_min(1)  # (N,)
    return float(per_token.mean()), normalized(per_token, spec.grid)
