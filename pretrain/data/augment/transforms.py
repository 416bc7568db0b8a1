"""Spatial transforms of whole clips: the same crop, flip and resize on every frame.

Clips move through here as uint8 tensors `(T, C, H, W)` (channels-last memory, which is what
torch's uint8 antialiased resize is fastest on) and leave as `(C, T, H, W)`, either normalized
float or uint8 for normalizing on the device (`normalize_video`). Crop boxes are
`(top, left, height, width)` and are chosen from the frame size alone. Frames are converted to
RGB at their native size unless that is much larger than needed (`conversion_size`). Cropping,
resizing and mirroring themselves are `pretrain.data.video.crop` (the frame renderer uses them too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from pretrain.data.video.crop import Box
from pretrain.pixels import IMAGENET_MEAN, IMAGENET_STD

MULTI_SCALES = (1.0, 0.875, 0.75, 0.66)


# Scaling inside swscale costs about as much as converting and resizing in torch afterwards
# (measured on 320x240 MPEG-4 and 640x360 H.264); it pays off only when it shrinks a lot.
MIN_SHRINK_DURING_CONVERSION = 2.0


def conversion_size(width: int, height: int, short_side: int) -> tuple[int, int] | None:
    """(width, height) to convert decoded frames to: short side `short_side` when that shrinks
    the frame at least `MIN_SHRINK_DURING_CONVERSION` times, else None (native size; the crop is
    resized afterwards anyway)."""
    scale = short_side / min(width, height)
    if scale * MIN_SHRINK_DURING_CONVERSION > 1.0:
        return None
    return short_side_size(width, height, short_side)


def short_side_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) scaled so that min(width, height) == short_side."""
    scale = short_side / min(width, height)
    return max(short_side, round(width * scale)), max(short_side, round(height * scale))


def multi_scale_crop_box(
    height: int,
    width: int,
    size: int,
    rng: np.random.Generator,
    scales: Sequence[float] = MULTI_SCALES,
    max_distort: int = 1,
) -> Box:
    """VideoMAE's GroupMultiScaleCrop (fix_crop, more_fix_crop): crop sides are the short side
    times a scale (sides within 3 px of `size` snap to it), width and height scales at most
    `max_distort` apart, placed at one of 13 fixed positions (corners, centre, edge midpoints,
    quarter points)."""
    base = min(height, width)
    sides = [int(base * s) for s in scales]
    sides = [size if abs(s - size) < 3 else s for s in sides]
    pairs = [
        (sides[i], sides[j])
        for i in range(len(sides))
        for j in range(len(sides))
        if abs(i - j) <= max_distort
    ]
    crop_h, crop_w = pairs[int(rng.integers(len(pairs)))]
    crop_h, crop_w = min(crop_h, height), min(crop_w, width)
    step_h, step_w = (height - crop_h) // 4, (width - crop_w) // 4
    positions = [
        (0, 0),
        (0, 4),
        (4, 0),
        (4, 4),
        (2, 2),
        (2, 0),
        (2, 4),
        (4, 2),
        (0, 2),
        (1, 1),
        (1, 3),
        (3, 1),
        (3, 3),
    ]  # (row, column) in quarter steps
    row, col = positions[int(rng.integers(len(positions)))]
    return row * step_h, col * step_w, crop_h, crop_w


def random_resized_crop_box(
    height: int,
    width: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> Box:
    """Inception-style crop: area fraction uniform in `scale`, aspect log-uniform in `ratio`;
    after 10 misses, the largest centred crop within the ratio bounds (torchvision's rule)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_w = int(round(math.sqrt(target * aspect)))
        crop_h = int(round(math.sqrt(target / aspect)))
        if 0 < crop_w <= width and 0 < crop_h <= height:
            top = int(rng.integers(0, height - crop_h + 1))
            left = int(rng.integers(0, width - crop_w + 1))
            return top, left, crop_h, crop_w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        crop_w, crop_h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        crop_h, crop_w = height, int(round(height * ratio[1]))
    else:
        crop_h, crop_w = height, width
    return (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w


def spatial_view_boxes(height: int, width: int, size: int, num_crops: int) -> list[Box]:
    """Test-time crops of side `size` evenly spread along the long side (VideoMAE's 3-crop test:
    start, centre, end); one crop is centred. Frames are already resized to short side `size`."""
    crop_h, crop_w = min(size, height), min(size, width)
    free_h, free_w = height - crop_h, width - crop_w
    fractions = [0.5] if num_crops == 1 else [k / (num_crops - 1) for k in range(num_crops)]
    if free_h >= free_w:
        return [(round(f * free_h), free_w // 2, crop_h, crop_w) for f in fractions]
    return [(free_h // 2, round(f * free_w), crop_h, crop_w) for f in fractions]


def to_model_layout(clip: torch.Tensor) -> torch.Tensor:
    """`(T, C, H, W)` → contiguous `(C, T, H, W)`, the layout of the batch contract."""
    return clip.permute(1, 0, 2, 3).contiguous()


def normalize_video(
    video: torch.Tensor,
    channel_dim: int = -4,
    out: torch.Tensor | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Normalize pixel values in 0..255 (uint8 or float, any memory layout) by a per-channel
    `mean`/`std` in 0..1 units (ImageNet's, or the model's: `spec.pixel_mean`, 0.5 for HF ViViT's
    [-1, 1] inputs) to a contiguous float32 tensor (or into `out`); `channel_dim` is the C axis (−4 for
    `(..., C, T, H, W)`). Works on the device: call it on uint8 batches shipped with
    `data.normalize_on_device=true`. One channel at a time, with scalar operands: about 3x
    faster on the CPU than broadcasting a (3, 1, 1, 1) mean over the whole batch."""
    out = torch.empty(video.shape, dtype=torch.float32, device=video.device) if out is None else out
    for channel, (mu, sigma) in enumerate(zip(mean, std)):
        target = out.select(channel_dim, channel)
        target.copy_(video.select(channel_dim, channel)).sub_(mu * 255.0).mul_(1.0 / (sigma * 255.0))
    return out


def yuv420_to_rgb(video: torch.Tensor) -> torch.Tensor:
    """YUV 4:2:0 frames uint8 `(B, T, H*3/2, W)` (each frame: H rows of Y, then U and V planes of
    H/2 x W/2, H/4 rows each) → RGB float `(B, 3, T, H, W)` in 0..255, BT.601 limited range with
    each chroma sample covering its 2x2 pixels, rounded: the same as OpenCV's I420 conversion the
    loader uses otherwise. Runs on the device, for batches shipped with `data.ship_yuv420`."""
    batch, frames, rows, width = video.shape
    height = rows * 2 // 3
    chroma = video[:, :, height:].reshape(batch, frames, 2, height // 2, width // 2).float() - 128.0
    chroma = chroma.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # (B, T, 2, H, W)
    luma = (video[:, :, :height].float() - 16.0) * (255.0 / 219.0)  # (B, T, H, W)
    u, v = chroma[:, :, 0], chroma[:, :, 1]
    red = luma + 1.596027 * v
    green = luma - 0.391762 * u - 0.812968 * v
    blue = luma + 2.017232 * u
    return torch.stack([red, green, blue], dim=1).clamp_(0, 255).round_()  # (B, 3, T, H, W)


def random_erasing(
    video: torch.Tensor,
    rng: np.random.Generator,
    probability: float,
    normalized: bool = True,
    area: tuple[float, float] = (0.02, 1 / 3),
    log_aspect: tuple[float, float] = (math.log(0.3), math.log(1 / 0.3)),
) -> torch.Tensor:
    """Erase one random rectangle with per-pixel normal noise, the same rectangle on every frame
    (VideoMAE's cube random erasing, 'pixel' mode). `video` is `(C, T, H, W)`, normalized float,
    or (`normalized=False`) 0..255 pixels, where the noise is drawn in normalized space and
    mapped back. In place."""
    if probability <= 0 or rng.random() >= probability:
        return video
    _, _, height, width = video.shape
    for _ in range(10):
        target = height * width * rng.uniform(*area)
        aspect = math.exp(rng.uniform(*log_aspect))
        erase_h, erase_w = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if erase_h < height and erase_w < width:
            top = int(rng.integers(0, height - erase_h + 1))
            left = int(rng.integers(0, width - erase_w + 1))
            noise = _normal_noise((video.shape[0], video.shape[1], erase_h, erase_w), rng, normalized)
            video[:, :, top : top + erase_h, left : left + erase_w] = noise.to(video.dtype)
            return video
    return video


def _normal_noise(shape: tuple[int, ...], rng: np.random.Generator, normalized: bool) -> torch.Tensor:
    noise = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))  # normalized space
    if normalized:
        return noise
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1) * 255.0
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1) * 255.0
    return (noise * std + mean).clamp_(0, 255).round_()  # pixel space
