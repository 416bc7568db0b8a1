"""Is a saliency map right? Two checks against a classifier and a known object.

- `box_mass_ratio`: the share of the map's mass inside the object's box, divided by the box's share
  of the frame area (1 = no better than uniform).
- `deletion_curve`: delete tokens in a given order (their pixels set to the dataset mean, 0 after
  normalization) and follow the class probability; a faithful map's order makes it fall faster
  than a random order (smaller area under the curve).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from pretrain.models.arch import ArchSpec

DELETION_STEPS = 10


def token_map_to_frames(scores: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """(T', H', W') -> per-pixel (T, H, W) with each token's score spread evenly over its pixels."""
    t, p = spec.tubelet_size, spec.patch_size
    pixels = scores.repeat_interleave(t, 0).repeat_interleave(p, 1).repeat_interleave(p, 2)
    return pixels / (t * p * p)


def box_mass_ratio(scores: torch.Tensor, spec: ArchSpec, boxes: np.ndarray) -> float:
    """scores (T', H', W') summing to 1, boxes int (T, 4) `(top, left, height, width)` in model
    input pixels -> mass inside the boxes / their area share."""
    pixels = token_map_to_frames(scores, spec)  # (T, H, W)
    inside = torch.zeros_like(pixels, dtype=torch.bool)
    for frame, (top, left, height, width) in enumerate(boxes):
        inside[frame, top : top + height, left : left + width] = True
    area_share = inside.float().mean()
    return float(pixels[inside].sum() / pixels.sum() / area_share)


def delete_tokens(video: torch.Tensor, tokens: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """video (B, C, T, H, W) normalized, tokens (B, N) bool -> a copy with those tokens' pixels 0."""
    t, p = spec.tubelet_size, spec.patch_size
    grid = tokens.reshape(tokens.shape[0], *spec.grid)  # (B, T', H', W')
    pixels = grid.repeat_interleave(t, 1).repeat_interleave(p, 2).repeat_interleave(p, 3)  # (B, T, H, W)
    return video.masked_fill(pixels[:, None], 0.0)


@torch.no_grad()
def deletion_curve(
    model: nn.Module, video: torch.Tensor, order: torch.Tensor, target: int, steps: int = DELETION_STEPS
) -> list[float]:
    """Class probability after deleting the first 0, N/steps, ..., N tokens of `order` (N,);
    video (1, C, T, H, W). One batched forward of `steps + 1` videos."""
    spec = model.spec
    counts = torch.linspace(0, spec.num_tokens, steps + 1).round().long()  # (S+1,)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())  # token -> its position in the order
    deleted = rank[None] < counts[:, None]  # (S+1, N)
    probs = model(delete_tokens(video.expand(steps + 1, -1, -1, -1, -1), deleted, spec)).float().softmax(-1)
    return probs[:, target].tolist()


def curve_area(curve: Sequence[float]) -> float:
    """Area under a curve sampled at evenly spaced fractions 0..1 (trapezoids)."""
    values = np.asarray(curve, dtype=np.float64)
    return float(((values[1:] + values[:-1]) / 2).mean())


def deletion_areas(
    model: nn.Module,
    video: torch.Tensor,
    scores: torch.Tensor,
    target: int,
    random_orders: int = 3,
    seed: int = 0,
) -> tuple[float, float]:
    """(area of the most-salient-first deletion curve, mean area over random orders)."""
    salient = torch.argsort(scores.flatten(), descending=True, stable=True)
    generator = torch.Generator().manual_seed(seed)
    random_areas = [
        curve_area(deletion_curve(model, video, torch.randperm(salient.numel(), generator=generator), target))
        for _ in range(random_orders)
    ]
    return curve_area(deletion_curve(model, video, salient, target)), float(np.mean(random_areas))
