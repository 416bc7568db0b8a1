"""Cropping, resizing and mirroring whole decoded clips: the same box on every frame.

Clips are uint8 `(T, C, H, W)` tensors (channels-last memory, which torch's uint8 antialiased resize
is fastest on). Boxes are `(top, left, height, width)`. The frame renderer (`frames`) and the
augmentations (`pretrain.data.augment.transforms`, which choose the boxes) both use these.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

Box = tuple[int, int, int, int]  # (top, left, height, width)


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """Decoded uint8 `(T, H, W, 3)` → `(T, 3, H, W)` view in channels-last memory (no copy)."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2)


def crop_resize(clip: torch.Tensor, box: Box, size: int | tuple[int, int]) -> torch.Tensor:
    """Crop `box` from every frame of uint8 `(T, C, H, W)` and resize to `size` (a side, or
    (height, width)); bilinear, antialiased when shrinking. Returns uint8 `(T, C, height, width)`."""
    top, left, height, width = box
    cropped = clip[:, :, top : top + height, left : left + width]
    size = (size, size) if isinstance(size, int) else tuple(size)
    if (height, width) == size:
        return cropped
    return F.interpolate(cropped, size=size, mode="bilinear", antialias=True, align_corners=False)


def hflip(clip: torch.Tensor) -> torch.Tensor:
    """Mirror every frame of `(T, C, H, W)` left-right."""
    return clip.flip(-1)
