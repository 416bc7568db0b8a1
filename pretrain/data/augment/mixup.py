"""Batch-level mixup / cutmix with label smoothing, producing soft targets (timm's `Mixup` in
'batch' mode, for video: the cutmix box covers the same pixels in every frame).

Each batch is mixed with itself reversed. With both alphas > 0, cutmix is chosen with
probability `switch_prob` (0.5), as timm does. The cutmix λ is corrected to the box's true area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def smooth_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """`(B,)` long → `(B, K)` float: 1 − ε + ε/K on the label, ε/K elsewhere."""
    off = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32)
    return targets.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


@dataclass(frozen=True)
class Mixup:
    num_classes: int
    mixup_alpha: float = 0.8
    cutmix_alpha: float = 1.0
    switch_prob: float = 0.5
    label_smoothing: float = 0.1

    @property
    def active(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(
        self, video: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mix `(B, C, T, H, W)` video (float, or uint8 pixels → float pixels) and return it with
        soft targets `(B, K)`."""
        targets = smooth_one_hot(labels, self.num_classes, self.label_smoothing)  # (B, K)
        if not self.active or video.shape[0] < 2:
            return video, targets
        video = video.float() if not video.dtype.is_floating_point else video
        use_cutmix = self.cutmix_alpha > 0 and (self.mixup_alpha <= 0 or rng.random() < self.switch_prob)
        if use_cutmix:
            lam = float(rng.beta(self.cutmix_alpha, self.cutmix_alpha))
            video, lam = _cutmix(video, lam, rng)
        else:
            lam = float(rng.beta(self.mixup_alpha, self.mixup_alpha))
            video = video * lam + video.flip(0) * (1.0 - lam)
        return video, targets * lam + targets.flip(0) * (1.0 - lam)


def _cutmix(video: torch.Tensor, lam: float, rng: np.random.Generator) -> tuple[torch.Tensor, float]:
    """Paste a box of area ≈ (1 − λ) from the reversed batch; return the true λ."""
    height, width = video.shape[-2:]
    cut = np.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * cut), int(width * cut)
    cy, cx = int(rng.integers(height)), int(rng.integers(width))
    top, bottom = np.clip([cy - cut_h // 2, cy + cut_h // 2], 0, height)
    left, right = np.clip([cx - cut_w // 2, cx + cut_w // 2], 0, width)
    mixed = video.clone()
    mixed[..., top:bottom, left:right] = video.flip(0)[..., top:bottom, left:right]
    true_lam = 1.0 - (bottom - top) * (right - left) / float(height * width)
    return mixed, float(true_lam)
