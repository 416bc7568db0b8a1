"""Space-time saliency over a model's token grid `(T', H', W')`, computed from outside the model.

- `attention_rollout`: attention maps recomputed from hooks and multiplied through the blocks, for
  joint, divided (TimeSformer) and factorised (ViViT) attention (`pretrain.evaluate.rollout`).
- `attention_relevance`: gradient-weighted attention relevance (Chefer et al. 2021), class-specific,
  for the same three layouts (`pretrain.evaluate.relevance`).
- `gradient_saliency`: Grad-CAM on the last block's output tokens: the class logit's gradient,
  averaged over tokens, weights each channel; a token scores ReLU(sum_d w_d x_d).
- `occlusion_saliency`: gradient-free, for models torch cannot look into (an ONNX / int8 export):
  blocks of tokens are deleted one at a time (pixels set to the mean) and each block scores the
  drop of the class probability it causes.
- `reconstruction_error`: for a pretraining (VideoMAE) model, each token's reconstruction error
  when it is hidden, over complementary tube masks that hide every token the same number of times.

Scores come back as float `(T', H', W')` summing to 1 (reconstruction: the error itself).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.evaluate.faithfulness import delete_tokens
from pretrain.evaluate.relevance import relevance_scores
from pretrain.evaluate.rollout import rollout_scores

OCCLUSION_MAX_BLOCKS = 128
"""Occlusion deletes blocks of tokens, grown until there are at most this many forwards to run
(16x224 ViT: blocks of 1 time slot x 4 x 4 patches, 128 of them)."""
OCCLUSION_BATCH = 16
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


def attention_rollout(model: nn.Module, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """video (1, C, T, H, W) normalized -> (logits (K,), scores (T', H', W')); see `rollout`."""
    logits, scores = rollout_scores(model, video)
    return logits, normalized(scores, model.spec.grid)


def attention_relevance(
    model: nn.Module, video: torch.Tensor, target: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """video (1, C, T, H, W) normalized -> (logits (K,), scores (T', H', W'), explained class);
    see `relevance`."""
    logits, scores, target = relevance_scores(model, video, target)
    return logits, normalized(scores, model.spec.grid), target


def gradient_saliency(
    model: nn.Module, video: torch.Tensor, target: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Grad-CAM on the last block's tokens: video (1, C, T, H, W) -> (logits (K,), scores
    (T', H', W'), explained class). `target` None explains the top class.

    A mean-pooled model reads the last block's outputs; a model that pools a class token reads only
    the class token's output, which the last block computes from its inputs, so there the last
    block's input tokens are used (their outputs carry no gradient)."""
    encoder = getattr(model, "encoder", model)
    prefix = getattr(encoder, "num_prefix_tokens", 0)
    captured: list[torch.Tensor] = []

    def keep(tokens: torch.Tensor) -> None:
        tokens.retain_grad()
        captured.append(tokens)

    last = encoder_blocks(model)[-1]
    handle = (
        last.register_forward_pre_hook(lambda module, args: keep(args[0]))
        if prefix
        else last.register_forward_hook(lambda module, args, output: keep(output))
    )
    try:
        with torch.enable_grad():
            logits = model(video.detach())[0].float()  # (K,)
            target = int(logits.argmax()) if target is None else target
            logits[target].backward()
    finally:
        handle.remove()
    tokens, grad = (
        patch_tokens(captured[-1].detach(), prefix),
        patch_tokens(captured[-1].grad, prefix),
    )  # (N, D)
    scores = F.relu(tokens @ grad.mean(0))  # (N,): channels weighted by their mean gradient
    model.zero_grad(set_to_none=True)
    return logits.detach(), normalized(scores, model.spec.grid), target


def patch_tokens(x: torch.Tensor, prefix: int) -> torch.Tensor:
    """A block's tokens (G, L, D) -> the patch tokens (N, D) in grid order: one sequence (G = 1)
    with `prefix` class tokens first, or one sequence per time slice (ViViT's spatial blocks,
    G = T') each with its own class token."""
    return x[0, prefix:] if x.shape[0] == 1 else x[:, prefix:].flatten(0, 1)


@torch.no_grad()
def reconstruction_error(model: nn.Module, video: torch.Tensor, seed: int = 0) -> tuple[float, torch.Tensor]:
    """A VideoMAE model's per-token error on video (1, C, T, H, W): (mean error, error per token
    (T', H', W'), in the loss's units). Pass k hides every spatial position outside group k (a tube mask)."""
    from pretrain.models.patches import patchify

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
    return float(per_token.mean()), per_token.reshape(spec.grid)


def occlusion_block(grid: tuple[int, int, int], max_blocks: int = OCCLUSION_MAX_BLOCKS) -> tuple[int, int]:
    """(time slots, patches per side) of one occluded block: space grows first, then time."""
    slots, side = 1, 1
    while block_ids(grid, slots, side).max() >= max_blocks and side < max(grid[1:]):
        side += 1
    while block_ids(grid, slots, side).max() >= max_blocks and slots < grid[0]:
        slots += 1
    return slots, side


def block_ids(grid: tuple[int, int, int], slots: int, side: int) -> torch.Tensor:
    """The block of every token (N,) in grid order, for blocks of `slots` x `side` x `side` tokens."""
    t, h, w = torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij")  # (T', H', W') each
    rows, cols = math.ceil(grid[1] / side), math.ceil(grid[2] / side)
    return ((t // slots) * rows * cols + (h // side) * cols + w // side).flatten()


@torch.no_grad()
def occlusion_saliency(model: nn.Module, video: torch.Tensor, target: int) -> torch.Tensor:
    """video (1, C, T, H, W) normalized -> scores (T', H', W'): each token gets the drop of the
    `target` probability when its block is deleted (ReLU: a block whose loss helps scores 0)."""
    spec = model.spec
    block = block_ids(spec.grid, *occlusion_block(spec.grid))  # (N,)
    base = float(model(video).float().softmax(-1)[0, target])
    drops = torch.empty(int(block.max()) + 1)  # (blocks,)
    for first in range(0, drops.numel(), OCCLUSION_BATCH):
        ids = torch.arange(first, min(first + OCCLUSION_BATCH, drops.numel()))  # (b,)
        deleted = block[None] == ids[:, None]  # (b, N)
        videos = delete_tokens(video.expand(ids.numel(), -1, -1, -1, -1), deleted, spec)
        drops[ids] = base - model(videos).float().softmax(-1)[:, target]
    return normalized(drops[block], spec.grid)
