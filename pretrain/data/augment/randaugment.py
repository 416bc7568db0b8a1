"""RandAugment for video: each chosen op is applied with the same parameters to every frame.

Follows timm's `rand-m{M}-n{N}-mstd0.5-inc1` (the VideoMAE fine-tuning policy): N ops drawn with
replacement from the "increasing" set, each applied with probability 0.5 at a magnitude drawn
from N(M, 0.5) clipped to [0, 10], geometric and enhance ops with a random sign. Written in torch
on uint8 `(T, C, H, W)` clips because timm/torchvision are not dependencies; pixel-wise ops that
depend on image statistics (autocontrast, equalize, contrast) use each frame's own statistics,
as PIL does when VideoMAE maps the op over frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

MAX_LEVEL = 10.0
FILL = (124, 116, 104)  # ImageNet mean in pixels: what geometric ops reveal at the border

Op = Callable[[torch.Tensor, float], torch.Tensor]  # (clip uint8 (T, C, H, W), level in [0, 1])


def rand_augment(
    clip: torch.Tensor,
    rng: np.random.Generator,
    num_ops: int,
    magnitude: float,
    magnitude_std: float = 0.5,
    probability: float = 0.5,
) -> torch.Tensor:
    """Apply `num_ops` random ops to uint8 `(T, C, H, W)`; returns uint8 `(T, C, H, W)`."""
    names = list(OPS)
    for _ in range(num_ops):
        name = names[int(rng.integers(len(names)))]
        if rng.random() >= probability:
            continue
        level = float(np.clip(rng.normal(magnitude, magnitude_std), 0.0, MAX_LEVEL)) / MAX_LEVEL
        if name in SIGNED and rng.random() < 0.5:
            level = -level
        clip = OPS[name](clip, level)
    return clip


def _blend(degenerate: torch.Tensor, clip: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL ImageEnhance: degenerate + factor × (clip − degenerate), clipped to uint8."""
    mixed = degenerate + factor * (clip.float() - degenerate)
    return mixed.round_().clamp_(0, 255).to(torch.uint8)


def _grayscale(clip: torch.Tensor) -> torch.Tensor:
    """PIL 'L' conversion of `(T, 3, H, W)` → float `(T, 1, H, W)`."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (clip.float() * weights).sum(1, keepdim=True)


def auto_contrast(clip: torch.Tensor, level: float) -> torch.Tensor:
    low = clip.amin(dim=(2, 3), keepdim=True).float()
    high = clip.amax(dim=(2, 3), keepdim=True).float()
    scale = torch.where(high > low, 255.0 / (high - low).clamp(min=1), torch.ones_like(low))
    low = torch.where(high > low, low, torch.zeros_like(low))
    return ((clip.float() - low) * scale).clamp_(0, 255).to(torch.uint8)


def equalize(clip: torch.Tensor, level: float) -> torch.Tensor:
    """PIL ImageOps.equalize per frame and channel."""
    frames, channels = clip.shape[:2]
    flat = clip.reshape(frames * channels, -1).long()
    out = torch.empty_like(flat)
    for row in range(flat.shape[0]):
        hist = torch.bincount(flat[row], minlength=256)
        last = hist[hist.nonzero().max()]
        step = int((hist.sum() - last) // 255)
        if step == 0:
            out[row] = flat[row]
            continue
        lut = ((torch.cumsum(hist, 0) - hist + step // 2) // step).clamp(max=255)
        out[row] = lut[flat[row]]
    return out.reshape(clip.shape).to(torch.uint8)


def invert(clip: torch.Tensor, level: float) -> torch.Tensor:
    return 255 - clip


def posterize(clip: torch.Tensor, level: float) -> torch.Tensor:
    bits = 4 - int(abs(level) * 4)
    mask = (0xFF << (8 - max(bits, 1))) & 0xFF
    return clip & mask


def solarize(clip: torch.Tensor, level: float) -> torch.Tensor:
    threshold = 256 - int(abs(level) * 256)
    return torch.where(clip >= threshold, 255 - clip, clip)


def solarize_add(clip: torch.Tensor, level: float) -> torch.Tensor:
    added = (clip.int() + int(abs(level) * 110)).clamp_(max=255).to(torch.uint8)
    return torch.where(clip < 128, added, clip)


def color(clip: torch.Tensor, level: float) -> torch.Tensor:
    return _blend(_grayscale(clip), clip, 1.0 + 0.9 * level)


def contrast(clip: torch.Tensor, level: float) -> torch.Tensor:
    mean = _grayscale(clip).mean(dim=(1, 2, 3), keepdim=True).round()
    return _blend(mean, clip, 1.0 + 0.9 * level)


def brightness(clip: torch.Tensor, level: float) -> torch.Tensor:
    return _blend(torch.zeros(1), clip, 1.0 + 0.9 * level)


def sharpness(clip: torch.Tensor, level: float) -> torch.Tensor:
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    frames, channels, height, width = clip.shape
    flat = clip.float().reshape(frames * channels, 1, height, width)
    smooth = F.conv2d(flat, kernel.view(1, 1, 3, 3)).reshape(frames, channels, height - 2, width - 2)
    degenerate = clip.float()
    degenerate[:, :, 1:-1, 1:-1] = smooth.round()  # PIL leaves the border unfiltered
    return _blend(degenerate, clip, 1.0 + 0.9 * level)


def _affine(clip: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Warp every frame with the same 2×3 `matrix` in normalized coordinates; reveal FILL."""
    frames = clip.shape[0]
    grid = F.affine_grid(matrix.expand(frames, 2, 3), list(clip.shape), align_corners=False)
    fill = torch.tensor(FILL, dtype=torch.float32).view(1, 3, 1, 1)
    shifted = clip.float() - fill  # zero padding then reveals FILL
    warped = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return (warped + fill).round_().clamp_(0, 255).to(torch.uint8)


def rotate(clip: torch.Tensor, level: float) -> torch.Tensor:
    angle = math.radians(30.0 * level)
    height, width = clip.shape[-2:]
    aspect = height / width  # rotate in pixel space, not in the stretched normalized square
    cos, sin = math.cos(angle), math.sin(angle)
    return _affine(clip, torch.tensor([[cos, -sin * aspect, 0.0], [sin / aspect, cos, 0.0]]))


def shear_x(clip: torch.Tensor, level: float) -> torch.Tensor:
    height, width = clip.shape[-2:]
    return _affine(clip, torch.tensor([[1.0, 0.3 * level * height / width, 0.0], [0.0, 1.0, 0.0]]))


def shear_y(clip: torch.Tensor, level: float) -> torch.Tensor:
    height, width = clip.shape[-2:]
    return _affine(clip, torch.tensor([[1.0, 0.0, 0.0], [0.3 * level * width / height, 1.0, 0.0]]))


def translate_x(clip: torch.Tensor, level: float) -> torch.Tensor:
    return _affine(clip, torch.tensor([[1.0, 0.0, 2 * 0.45 * level], [0.0, 1.0, 0.0]]))


def translate_y(clip: torch.Tensor, level: float) -> torch.Tensor:
    return _affine(clip, torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 2 * 0.45 * level]]))


OPS: dict[str, Op] = {
    "AutoContrast": auto_contrast,
    "Equalize": equalize,
    "Invert": invert,
    "Rotate": rotate,
    "PosterizeIncreasing": posterize,
    "SolarizeIncreasing": solarize,
    "SolarizeAdd": solarize_add,
    "ColorIncreasing": color,
    "ContrastIncreasing": contrast,
    "BrightnessIncreasing": brightness,
    "SharpnessIncreasing": sharpness,
    "ShearX": shear_x,
    "ShearY": shear_y,
    "TranslateXRel": translate_x,
    "TranslateYRel": translate_y,
}
SIGNED = {
    "Rotate",
    "ColorIncreasing",
    "ContrastIncreasing",
    "BrightnessIncreasing",
    "SharpnessIncreasing",
    "ShearX",
    "ShearY",
    "TranslateXRel",
    "TranslateYRel",
}
