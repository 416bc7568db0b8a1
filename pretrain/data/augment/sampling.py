"""Temporal sampling: which frame indices make a clip.

A clip is `num_frames` frames taken every `stride` frames, spanning
`(num_frames - 1) * stride + 1` source frames.

Short videos (fewer frames than the span) are handled as VideoMAE does: the clip starts at frame 0,
steps by `stride` while frames remain, and repeats the last available frame for the rest
(VideoMAE's pretraining loader keeps its offset once `offset + stride` passes the end; its
fine-tuning loader pads with the last frame). Every clip therefore has exactly `num_frames` frames.
"""

from __future__ import annotations

import numpy as np


def clip_span(num_frames: int, stride: int) -> int:
    """Source frames covered by one clip."""
    return (num_frames - 1) * stride + 1


def clip_indices(start: int, num_frames: int, stride: int, video_frames: int) -> np.ndarray:
    """Indices of the clip starting at `start`, clamped to the last frame (short videos)."""
    if video_frames <= 0:
        raise ValueError(f"a video needs at least one frame, got {video_frames}")
    steps = start + stride * np.arange(num_frames)
    return np.minimum(steps, video_frames - 1).astype(np.int64)  # (num_frames,)


def random_clip(video_frames: int, num_frames: int, stride: int, rng: np.random.Generator) -> np.ndarray:
    """One clip at a uniformly random start among those that fit (start 0 for short videos)."""
    latest_start = max(video_frames - clip_span(num_frames, stride), 0)
    start = int(rng.integers(0, latest_start + 1))
    return clip_indices(start, num_frames, stride, video_frames)


def uniform_clips(video_frames: int, num_frames: int, stride: int, num_clips: int) -> np.ndarray:
    """`num_clips` clips with starts evenly spread from the first to the last possible start
    (the multi-view test protocol); one clip is centred. Returns `(num_clips, num_frames)`."""
    latest_start = max(video_frames - clip_span(num_frames, stride), 0)
    if num_clips == 1:
        starts = [latest_start // 2]
    else:
        starts = [round(k * latest_start / (num_clips - 1)) for k in range(num_clips)]
    return np.stack([clip_indices(s, num_frames, stride, video_frames) for s in starts])
