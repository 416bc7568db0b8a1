"""Shot changes (hard cuts) from decoded low-resolution frames.

Our own small detector rather than PySceneDetect: `scenedetect-headless` 0.7.2 is light (a 150 kB
wheel plus click, platformdirs, tqdm; opencv-python-headless is already here), but its content
detector does the same arithmetic we do here (mean absolute difference of consecutive
downscaled frames against a threshold) behind its own frame source and timecode types, and would
decode the video through a second reader. Here the frames come from the decoder we already use and
are sampled straight from its Y, U and V planes on a grid about `WIDTH` pixels wide (no colour
conversion, no scaling pass: measured 2.9 s for 5 min of 320x240 H.264 against 5.4 s through
swscale to 64x48 RGB, decoding alone 2.6 s), so the cost is about one decode pass.

Score of frame t: mean |frame_t - frame_(t-1)| over the sampled Y, U, V values (0-255). Frame t
starts a new shot when its score is at least `threshold` AND at least `RATIO` times the mean score
of the `WINDOW` frames on each side (fast motion raises every score around it, a cut raises one), and at
least `min_shot_frames` frames have passed since the previous cut (the adaptive rule of
PySceneDetect's AdaptiveDetector, ratio 3 as there; its minimum 15 is on an HSV scale, ours 8 on
Y, U, V, where chroma moves less: measured on generated shots, cuts score at least 11.6, frames
inside a shot at most 4.9). Hard cuts are found at their exact frame (the first frame of the new
shot); gradual transitions (fades, dissolves) are not detected.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import av
import numpy as np

from pretrain.data.video.probe import ProbeError

log = logging.getLogger(__name__)

WIDTH = 64
"""Frames are sampled on a grid about this many pixels wide before scoring."""
PLANAR_420 = ("yuv420p", "yuvj420p")
RATIO = 3.0
WINDOW = 2
DEFAULT_THRESHOLD = 8.0


def _planes(frame, step: int) -> np.ndarray:
    """The Y, U and V planes of a 4:2:0 frame sampled every `step` luma pixels, concatenated (n,)."""
    if frame.format.name not in PLANAR_420:
        frame = frame.reformat(format="yuv420p")
    parts = []
    for index, plane in enumerate(frame.planes):
        pixels = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        every = step if index == 0 else max(1, step // 2)
        parts.append(pixels[::every, ::every].ravel())
    return np.concatenate(parts)


def small_frames(file: str, width: int = WIDTH, threads: int = 0) -> Iterator[np.ndarray]:
    """Every frame of the first video stream as its decoded Y, U, V planes sampled on a grid about
    `width` pixels wide (uint8, flat): no colour conversion or scaling pass."""
    try:
        container = av.open(file)
    except (av.FFmpegError, ValueError) as error:
        raise ProbeError(f"not a readable video container ({error})") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = threads
        for frame in container.decode(stream):
            yield _planes(frame, max(1, round(frame.width / width)))


def cut_scores(frames: Iterator[np.ndarray]) -> np.ndarray:
    """Score of every frame `(T,)` float; frame 0 scores 0."""
    scores, previous = [0.0], None
    for frame in frames:
        current = frame.astype(np.int16)  # (n,)
        if previous is not None:
            scores.append(float(np.abs(current - previous).mean()))
        previous = current
    return np.asarray(scores[: max(1, len(scores))])


def cuts_from_scores(scores: np.ndarray, threshold: float, min_shot_frames: int) -> list[int]:
    """Frame indices that start a new shot."""
    cuts: list[int] = []
    for index in np.flatnonzero(scores >= threshold):
        around = np.concatenate(
            [scores[max(1, index - WINDOW) : index], scores[index + 1 : index + 1 + WINDOW]]
        )
        local = float(around.mean()) if around.size else 0.0
        if scores[index] < RATIO * local:
            continue
        if index - (cuts[-1] if cuts else 0) >= min_shot_frames:
            cuts.append(int(index))
    return cuts


def detect_cuts(
    file: str, threshold: float = DEFAULT_THRESHOLD, num_frames: int | None = None, min_shot_frames: int = 4
) -> list[int]:
    """First frame index of every shot after the first."""
    scores = cut_scores(small_frames(file))
    if num_frames is not None and len(scores) != num_frames:
        log.debug("%s: %d frames decoded for scene detection, %d demuxed", file, len(scores), num_frames)
    return cuts_from_scores(scores, threshold, min_shot_frames)
