"""Optional re-encode: H.264 in MP4, short side resized, frame rate changed, short keyframe interval
(so a reader seeking to a random clip decodes at most `gop_seconds` of extra frames)."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import av

from pretrain.data.video.probe import ProbeError, VideoInfo, VideoSource, decoded_frames, stream_rate

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)


@dataclass(frozen=True)
class ReencodeOptions:
    resize_short: int | None = None
    """Target short side in pixels; never upscales. None keeps the size."""
    fps: float | None = None
    """Output frame rate (frames are dropped or repeated). None keeps the input rate."""
    crf: int = 23
    """x264 constant rate factor: lower is better quality and bigger files (18–28 is typical)."""
    preset: str = "veryfast"
    gop_seconds: float = 0.5
    """Keyframe interval in seconds."""


def output_size(width: int, height: int, resize_short: int | None) -> tuple[int, int]:
    """Scale so the short side is `resize_short` (not above the original); even sizes for 4:2:0."""
    scale = 1.0
    if resize_short and min(width, height) > resize_short:
        scale = resize_short / min(width, height)
    return (max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2))


def _repeats(index: int, ratio: float) -> int:
    """How many output frames take source frame `index` when output rate = input rate / ratio."""
    return max(0, math.ceil((index + 1) / ratio - 1e-9) - math.ceil(index / ratio - 1e-9))


def reencode(source: VideoSource, options: ReencodeOptions) -> tuple[bytes, VideoInfo]:
    """Decode every frame (which also probes the input) and write H.264 MP4 bytes."""
    return encode_frames(decoded_frames(source), options)


def encode_frames(
    frames: Iterable[tuple[object, av.VideoFrame]], options: ReencodeOptions
) -> tuple[bytes, VideoInfo]:
    """H.264 MP4 bytes of `(input stream, frame)` pairs (all frames of a video, or of a span)."""
    buffer = io.BytesIO()
    output = av.open(buffer, mode="w", format="mp4")
    out_stream, ratio, written = None, 1.0, 0
    try:
        for index, (in_stream, frame) in enumerate(frames):
            if out_stream is None:
                in_fps = stream_rate(in_stream)
                if in_fps <= 0:
                    raise ProbeError("no frame rate in the container")
                out_fps = options.fps or in_fps
                ratio = in_fps / out_fps
                out_stream = _add_h264(output, frame, out_fps, options)
            for _ in range(_repeats(index, ratio)):
                resized = frame.reformat(
                    width=out_stream.width, height=out_stream.height, format="yuv420p", interpolation="AREA"
                )
                resized.pts, resized.time_base = written, out_stream.codec_context.time_base
                for packet in out_stream.encode(resized):
                    output.mux(packet)
                written += 1
        if out_stream is None:
            raise ProbeError("no decodable frames")
        for packet in out_stream.encode():
            output.mux(packet)
    finally:
        output.close()
    fps = float(out_stream.codec_context.framerate)
    info = VideoInfo(
        codec="h264",
        width=out_stream.width,
        height=out_stream.height,
        fps=round(fps, 6),
        num_frames=written,
        duration=round(written / fps, 6),
    )
    return buffer.getvalue(), info


def _add_h264(output, frame, fps: float, options: ReencodeOptions):
    rate = Fraction(fps).limit_denominator(1001)
    stream = output.add_stream("libx264", rate=rate)
    stream.width, stream.height = output_size(frame.width, frame.height, options.resize_short)
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = 1 / rate
    stream.gop_size = max(1, int(round(float(rate) * options.gop_seconds)))
    stream.thread_count = 1
    stream.options = {
        "crf": str(options.crf),
        "preset": options.preset,
        "keyint_min": str(stream.gop_size),
        "sc_threshold": "0",
    }
    return stream
