"""Synthetic but really encoded videos, for tests, benchmarks and the quickstart.

Frames are made with numpy and encoded with PyAV (FFmpeg inside the wheel): MPEG-4 Part 2 in AVI
like UCF101/HMDB51, or H.264 in MP4. Nothing here is a stand-in for decoding: readers see real
bitstreams with keyframes, B/P frames and container indexes.
"""

from __future__ import annotations

import numpy as np


def moving_square_frames(
    num_frames: int = 32,
    size: tuple[int, int] = (64, 80),
    velocity: tuple[float, float] = (1.5, 2.0),
    square: int = 12,
    seed: int = 0,
) -> np.ndarray:
    """A bright square moving at `velocity` (dy, dx pixels/frame) over a static noise background.

    Returns uint8 `(T, H, W, 3)`. Different velocities give classes that one frame cannot tell apart.
    """
    rng = np.random.default_rng(seed)
    height, width = size
    background = rng.integers(0, 90, size=(height, width, 3), dtype=np.uint8)
    colour = rng.integers(150, 256, size=3, dtype=np.uint8)
    start = rng.uniform([0, 0], [height - square, width - square])
    frames = np.repeat(background[None], num_frames, axis=0)
    for t in range(num_frames):
        y, x = (start + t * np.asarray(velocity)) % [height - square, width - square]
        frames[t, int(y) : int(y) + square, int(x) : int(x) + square] = colour
    return frames


def textured_pan_frames(
    num_frames: int = 64, size: tuple[int, int] = (240, 320), speed: float = 3.0, seed: int = 0
) -> np.ndarray:
    """A camera pan over a large random texture with a moving blob: costs what real video costs to
    decode (flat shapes decode unrealistically fast). uint8 `(T, H, W, 3)`."""
    rng = np.random.default_rng(seed)
    height, width = size
    span = int(num_frames * speed) + width + 1
    coarse = rng.integers(0, 256, size=(height // 4 + 1, span // 4 + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, 4, axis=0), 4, axis=1)[:height, :span]
    texture = (texture.astype(np.int16) + rng.integers(-20, 21, size=texture.shape)).clip(0, 255)
    texture = texture.astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        offset = int(t * speed)
        frame = texture[:, offset : offset + width].copy()
        cy, cx = height / 2 + height / 4 * np.sin(t / 7), width / 2 + width / 4 * np.cos(t / 11)
        blob = (yy - cy) ** 2 + (xx - cx) ** 2 < (min(height, width) / 8) ** 2
        frame[blob] = (255 - frame[blob]) // 2 + 64
        frames[t] = frame
    return frames
