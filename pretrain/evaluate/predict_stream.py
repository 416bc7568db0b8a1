"""`tubelet predict CKPT SOURCE --stream`: a classifier sliding over a long or live video.

Frames are decoded once, in order (`frame_source.FrameSource`), and kept in a buffer that spans one
window; overlapping windows sample their clip frames from the same buffer. Window k covers
`[t0, t0 + window)` with `t0 = start + k * stride` (seconds) and is scored as soon as a frame at or
past its end arrives: `num_frames` frames evenly spaced in time, the centre crop, one batch-1
forward. Trailing windows the input does not fill are not scored.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from pretrain.data.augment.transforms import normalize_video
from pretrain.evaluate.frame_source import FrameSource
from pretrain.evaluate.inference import InferenceModel


@dataclass
class WindowPrediction:
    t0: float
    t1: float
    topk: list[tuple[str, float]]
    latency_ms: float
    """From the window's last frame arriving to its scores."""

    def to_json(self) -> dict:
        return {
            "t0": round(self.t0, 3),
            "t1": round(self.t1, 3),
            "topk": [[name, round(prob, 4)] for name, prob in self.topk],
            "latency_ms": round(self.latency_ms, 2),
        }


@dataclass
class StreamStats:
    started: float = field(default_factory=time.perf_counter)
    first_time: float | None = None
    last_time: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    end_reason: str = "interrupted"

    @property
    def video_seconds(self) -> float:
        return 0.0 if self.first_time is None else self.last_time - self.first_time

    def summary(self) -> dict:
        wall = time.perf_counter() - self.started
        latencies = np.asarray(self.latencies_ms or [np.nan])
        return {
            "windows": len(self.latencies_ms),
            "video_s": round(self.video_seconds, 3),
            "wall_s": round(wall, 3),
            "realtime_factor": round(self.video_seconds / wall, 3) if wall > 0 else None,
            "latency_p50_ms": _rounded(np.percentile(latencies, 50)),
            "latency_p95_ms": _rounded(np.percentile(latencies, 95)),
            "end": self.end_reason,
        }


def _rounded(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 2)


def default_window(loaded: InferenceModel, fps: float) -> float:
    """Seconds one training clip spans: num_frames frames at the model's stride."""
    return ((loaded.spec.num_frames - 1) * loaded.stride + 1) / fps


class WindowBuffer:
    """Decoded frames since the current window's start, and the windows they complete."""

    def __init__(self, window_s: float, stride_s: float, num_frames: int) -> None:
        self.window_s, self.stride_s, self.num_frames = window_s, stride_s, num_frames
        self.times: deque[float] = deque()
        self.frames: deque[np.ndarray] = deque()
        self.t0: float | None = None

    def push(self, seconds: float, frame: np.ndarray) -> Iterator[tuple[float, float, np.ndarray]]:
        """Add a frame; yield (t0, t1, clip uint8 (T, S, S, 3)) for every window it completes.
        Live sources jump in time: windows a gap leaves without any frame are not scored, and a
        clock that goes back starts the windows over at the new time."""
        if self.t0 is None or (self.times and seconds < self.times[-1]):
            self.t0 = seconds
            self.times.clear()
            self.frames.clear()
        while seconds >= self.t0 + self.window_s:
            if not self.times:  # a gap: skip to the first window that can hold the new frame
                empty = math.floor((seconds - self.window_s - self.t0) / self.stride_s) + 1
                self.t0 += empty * self.stride_s
                continue
            yield self.t0, self.t0 + self.window_s, self._clip()
            self.t0 += self.stride_s
            while self.times and self.times[0] < self.t0:
                self.times.popleft()
                self.frames.popleft()
        self.times.append(seconds)
        self.frames.append(frame)

    def _clip(self) -> np.ndarray:
        """The buffered frames nearest (at or before) evenly spaced times over the window."""
        times = list(self.times)
        step = self.window_s / self.num_frames
        picks = [max(0, bisect.bisect_right(times, self.t0 + i * step) - 1) for i in range(self.num_frames)]
        return np.stack([self.frames[i] for i in picks])  # (T, S, S, 3)


@torch.inference_mode()
def score_clip(loaded: InferenceModel, clip: np.ndarray, topk: int) -> list[tuple[str, float]]:
    """uint8 (T, S, S, 3) -> top-k (class name, probability)."""
    spec = loaded.spec  # the normalization the weights expect travels in their spec
    video = normalize_video(
        torch.from_numpy(clip).permute(3, 0, 1, 2)[None], mean=spec.pixel_mean, std=spec.pixel_std
    )  # (1, C, T, S, S)
    probs = loaded.model(video)[0].float().softmax(-1)  # (K,)
    values, indices = probs.topk(min(topk, probs.numel()))
    return [(loaded.class_names[int(i)], float(v)) for v, i in zip(values, indices)]


def stream_predictions(
    loaded: InferenceModel,
    source: FrameSource,
    stats: StreamStats,
    topk: int = 5,
    window_s: float | None = None,
    stride_s: float | None = None,
) -> Iterator[WindowPrediction]:
    """Score every window of `source` as it completes; `stats` follows along (also on Ctrl-C)."""
    window_s = window_s or default_window(loaded, source.fps)
    buffer = WindowBuffer(window_s, stride_s or window_s / 2, loaded.spec.num_frames)
    for seconds, frame in source:
        arrived = time.perf_counter()
        stats.first_time = seconds if stats.first_time is None else stats.first_time
        stats.last_time = seconds
        for t0, t1, clip in buffer.push(seconds, frame):
            ranked = score_clip(loaded, clip, topk)
            latency = 1000 * (time.perf_counter() - arrived)
            stats.latencies_ms.append(latency)
            yield WindowPrediction(t0, t1, ranked, latency)
    stats.end_reason = source.end_reason or "end of input"
