"""Videos whose class depends only on a small moving object over a cluttered static background,
with the object's box in every frame: the ground truth for checking saliency maps.

The background is a field of random rectangles in muted colours plus noise (the same distribution
for every class); the object is a small square in its class's saturated colour that moves in a
random direction and wraps around the frame. Nothing outside the object's box tells the classes
apart, so an explanation of a correct decision should point at the box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Class name -> the object's RGB colour. The background's muted colours never come close.
OBJECT_COLOURS: dict[str, tuple[int, int, int]] = {
    "Red": (250, 30, 30),
    "Green": (30, 240, 30),
    "Blue": (40, 60, 255),
}


@dataclass(frozen=True)
class SalientClip:
    frames: np.ndarray
    """uint8 `(T, H, W, 3)`."""
    boxes: np.ndarray
    """int `(T, 4)`: the object's `(top, left, height, width)` in every frame."""
    label: int


def cluttered_background(size: tuple[int, int], rng: np.random.Generator, rectangles: int = 14) -> np.ndarray:
    """uint8 `(H, W, 3)`: overlapping rectangles in muted (grey-mixed) colours, plus pixel noise."""
    height, width = size
    image = np.full((height, width, 3), 100, dtype=np.int16)
    for _ in range(rectangles):
        h, w = rng.integers(3, max(4, height // 2)), rng.integers(3, max(4, width // 2))
        top, left = rng.integers(0, height - h + 1), rng.integers(0, width - w + 1)
        grey = rng.integers(50, 170)
        tint = rng.integers(-25, 26, size=3)  # muted: far from any object colour
        image[top : top + h, left : left + w] = grey + tint
    image += rng.integers(-12, 13, size=image.shape)
    return image.clip(0, 255).astype(np.uint8)


def salient_object_clip(
    label: int,
    seed: int,
    num_frames: int = 16,
    size: tuple[int, int] = (32, 32),
    square: int = 6,
    speed: float = 1.5,
) -> SalientClip:
    """One clip of class `label` (an index into `OBJECT_COLOURS`); `seed` fixes everything else."""
    colours = list(OBJECT_COLOURS.values())
    if not 0 <= label < len(colours):
        raise ValueError(f"label {label} out of range: {len(colours)} classes {list(OBJECT_COLOURS)}")
    rng = np.random.default_rng(seed)
    height, width = size
    frames = np.repeat(cluttered_background(size, rng)[None], num_frames, axis=0)  # (T, H, W, 3)
    angle = rng.uniform(0, 2 * np.pi)
    velocity = speed * np.array([np.sin(angle), np.cos(angle)])
    start = rng.uniform([0, 0], [height - square, width - square])
    boxes = np.empty((num_frames, 4), dtype=np.int64)
    for t in range(num_frames):
        y, x = ((start + t * velocity) % [height - square, width - square]).astype(int)
        frames[t, y : y + square, x : x + square] = colours[label]
        boxes[t] = (y, x, square, square)
    return SalientClip(frames, boxes, label)
