"""Shot changes (hard cuts) from decoded low-resolution frames.

Our own small detector rather than PySceneDetect: `scenedetect-headless` 0.7.2 is light (a 150 kB
wheel plus click, platformdirs, tqdm; opencv-python-headless is already here), but its content
detector does the same arithmetic we do here (mean absolute difference of consecutive
downscaled frames against a threshold) behind its own frame source and timecode types, and would
decode the video through a second reader. Here the frames come from the decoder we already use,
scaled down by FFmpeg (swscale) to at most `WIDTH` pixels wide, so the cost is one decode pass.

Score of frame t: mean |frame_t - frame_(t-1)| over the small RGB frames (0-255). Frame t starts a
new shot when its score is at least `threshold` AND at least `RATIO` times the mean score of the
`WINDOW` frames on each side (fast motion raises every score around it, a cut raises one), and at
least `min_shot_frames` frames have passed since the previous cut (the adaptive rule of
PySceneDetect's AdaptiveDetector, whose defaults are the same: ratio 3, minimum 15). Hard cuts are
found at their exact frame (the first frame of the new shot); gradual transitions (fades,
dissolves) are not detected.
"""

from __future__ import annotations

import logging
from typing import Iterator, Optional

import av
import numpy as np

from pretrain.data.shards.probe import ProbeError

log = logging.getLogger(__name__)

WIDTH = 64
"""Frames are scaled to this width (height keeps the aspect) before scoring."""
RATIO = 3.0
WINDOW = 2
DEFAULT_THRESHOLD = 15.0


def small_frames(file: str, width: int = WIDTH, threads: int = 0) -> Iterator[np.ndarray]:
    """Every frame of the first video stream as small RGB arrays `(h, width, 3)` uint8."""
    try:
        container = av.open(file)
    except (av.FFmpegError, ValueError) as error:
        raise ProbeError(f"not a readable video container ({error})") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        size = None
        for frame in container.decode(stream):
            if size is None:
                scale = min(1.0, width / frame.width)
                size = (max(2, round(frame.width * scale)), max(2, round(frame.height * scale)))
            yield frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()


def cut_scores(frames: Iterator[np.ndarray]) -> np.ndarray:
    """Score of every frame `(T,)` float; frame 0 scores 0."""
    scores, previous = [0.0], None
    for frame in frames:
        current = frame.astype(np.int16)
        if previous is not None:
            scores.append(float(np.abs(current - previous).mean()))
        previous = current
    return np.asarray(scores[: max(1, len(scores))])


def cuts_from_scores(scores: np.ndarray, threshold: float, min_shot_frames: int) -> list[int]:
    """Frame indices that start a new shot."""
    cuts: list[int] = []
    for index in np.flatnonzero(scores >= threshold):
        around = np.concatenate([scores[max(1, index - WINDOW) : index], scores[index + 1 : index + 1 + WINDOW]])
        local = float(around.mean()) if around.size else 0.0
        if scores[index] < RATIO * local:
            continue
        if index - (cuts[-1] if cuts else 0) >= min_shot_frames:
            cuts.append(int(index))
    return cuts


def detect_cuts(file: str, threshold: float = DEFAULT_THRESHOLD, num_frames: Optional[int] = None,
                min_shot_frames: int = 4) -> list[int]:
    """First frame index of every shot after the first."""
    scores = cut_scores(small_frames(file))
    if num_frames is not None and len(scores) != num_frames:
        log.debug("%s: %d frames decoded for scene detection, %d demuxed", file, len(scores), num_frames)
    return cuts_from_scores(scores, threshold, min_shot_frames)
