"""A generated long video made of shots with known hard cuts (tests and `tubelet bench shards`).

Each shot has its own background colour, texture and moving square, so consecutive shots differ
in every pixel and a shot-change detector has an unambiguous truth: `SceneVideo.cuts` lists the
index of the first frame of every shot after the first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pretrain.data.video.write import write_video


@dataclass(frozen=True)
class SceneVideo:
    path: Path
    fps: int
    num_frames: int
    cuts: tuple[int, ...]
    """First frame index of every shot but the first."""
    gop: int | None

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


def _bounce(position: float, limit: int) -> int:
    """A position moving back and forth in [0, limit] (no jumps: a jump would look like a cut)."""
    phase = position % (2 * limit)
    return int(phase if phase <= limit else 2 * limit - phase)


def _shot_frames(index: int, length: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(1000 + index)
    height, width = size
    base = rng.integers(30, 226, size=3)
    texture = (base + rng.integers(-25, 26, size=(height, width, 3))).clip(0, 255).astype(np.uint8)
    colour = (255 - base).astype(np.uint8)
    square = max(4, min(height, width) // 4)
    y, x = rng.uniform(0, height - square), rng.uniform(0, width - square)
    dy, dx = rng.uniform(-1.5, 1.5, size=2)
    for t in range(length):
        frame = texture.copy()
        top, left = _bounce(y + dy * t, height - square), _bounce(x + dx * t, width - square)
        frame[top : top + square, left : left + square] = colour
        yield frame


def write_scene_video(
    path: str | Path,
    shot_lengths: Sequence[int],
    fps: int = 8,
    size: tuple[int, int] = (48, 64),
    gop: int | None = None,
    codec: str | None = None,
) -> SceneVideo:
    """Encode shots of `shot_lengths` frames back to back; `size` is (height, width). `gop` fixes the
    keyframe interval (H.264 in .mp4 gets no extra keyframes at the cuts when it is set)."""

    def frames() -> Iterator[np.ndarray]:
        for index, length in enumerate(shot_lengths):
            yield from _shot_frames(index, length, size)

    fixed_gop = {"sc_threshold": "0", "keyint_min": str(gop)} if gop else {}
    write_video(path, frames(), fps=fps, codec=codec, gop=gop, options=fixed_gop)
    cuts = tuple(int(c) for c in np.cumsum(shot_lengths)[:-1])
    return SceneVideo(Path(path), fps, int(sum(shot_lengths)), cuts, gop)
