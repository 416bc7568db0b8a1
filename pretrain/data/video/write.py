"""Encoding frames into a video file (the inverse of decoding): synthetic corpora, rendered
reconstructions and saliency videos, test clips. PyAV (FFmpeg inside the wheel) writes real bitstreams."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODEC_BY_SUFFIX = {
    ".avi": "mpeg4",
    ".mp4": "libx264",
    ".mkv": "libx264",
    ".mov": "libx264",
    ".webm": "libvpx",
}


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int = 25,
    codec: str | None = None,
    bit_rate: int | None = None,
    gop: int | None = None,
    options: dict | None = None,
) -> Path:
    """Encode uint8 RGB frames `(H, W, 3)` into `path`; the codec follows the suffix by default.
    `options` are extra encoder options (e.g. x264 `sc_threshold`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = codec or CODEC_BY_SUFFIX.get(path.suffix.lower(), "mpeg4")
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            if stream is None:
                stream = _add_stream(container, codec, fps, frame.shape, bit_rate, gop)
                stream.options = {**stream.options, **(options or {})}
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            for packet in stream.encode(video_frame):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return path


def _add_stream(container, codec: str, fps: int, shape: tuple, bit_rate: int | None, gop: int | None):
    height, width = shape[:2]
    stream = container.add_stream(codec, rate=Fraction(fps))
    stream.width, stream.height = width, height
    stream.pix_fmt = "yuv420p"
    if bit_rate:
        stream.bit_rate = bit_rate
    if gop:
        stream.gop_size = gop
    if codec == "libx264":
        stream.options = {"preset": "veryfast"}
    return stream
