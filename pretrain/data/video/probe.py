"""Probe a video with PyAV before it is written: readable container, a video stream, decodable
frames, and no truncation (fewer frames than the container header declares)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import av

VideoSource = str | bytes
PROBE_MODES = ("full", "fast")


class ProbeError(Exception):
    """The video cannot be used; the message is the reason written to errors.jsonl."""


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float

    def as_dict(self) -> dict:
        return asdict(self)


def _open(source: VideoSource):
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ProbeError("zero-byte file")
        source = io.BytesIO(source)
    try:
        container = av.open(source, mode="r")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise ProbeError(f"not a readable video container ({error})") from None
    if not container.streams.video:
        container.close()
        raise ProbeError("no video stream")
    return container


def stream_rate(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def decoded_frames(source: VideoSource, threads: int = 1) -> Iterator[tuple[object, av.VideoFrame]]:
    """Yield `(stream, frame)` for every decoded frame, raising ProbeError on damage."""
    container = _open(source)
    with container:
        stream = container.streams.video[0]
        stream.thread_count = threads
        count = 0
        try:
            for frame in container.decode(stream):
                count += 1
                yield stream, frame
        except av.FFmpegError as error:
            raise ProbeError(f"decode error after {count} frames ({error})") from None
        check_complete(count, stream.frames)


def check_complete(found: int, declared: int) -> None:
    """Truncated files hold fewer frames than their header declares (a few frames of slack for
    encoder delay and rounding in muxers)."""
    if found == 0:
        raise ProbeError("no decodable frames")
    if declared and found < declared - max(2, declared // 100):
        raise ProbeError(f"truncated: {found} of {declared} declared frames present")


def probe_video(source: VideoSource, mode: str = "full", threads: int = 1) -> VideoInfo:
    """`full` decodes every frame; `fast` demuxes every packet and decodes only the first frame."""
    if mode not in PROBE_MODES:
        raise ValueError(f"probe mode {mode!r}; choose one of {PROBE_MODES}")
    if mode == "fast":
        return _probe_packets(source)
    count, stream, first = 0, None, None
    for stream, frame in decoded_frames(source, threads):  # noqa: B007  (the last stream is described)
        first = first or frame
        count += 1
    return _info(stream, first, count)


def _probe_packets(source: VideoSource) -> VideoInfo:
    container = _open(source)
    with container:
        stream = container.streams.video[0]
        count, first = 0, None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                count += 1
                if first is None:
                    frames = packet.decode()
                    first = frames[0] if frames else None
        except av.FFmpegError as error:
            raise ProbeError(f"demux/decode error after {count} packets ({error})") from None
        if first is None:
            raise ProbeError("no decodable frames")
        check_complete(count, stream.frames)
        return _info(stream, first, count)


def _info(stream, frame, count: int) -> VideoInfo:
    fps = stream_rate(stream)
    if fps <= 0:
        raise ProbeError("no frame rate in the container")
    return VideoInfo(
        codec=stream.codec_context.name,
        width=frame.width,
        height=frame.height,
        fps=round(fps, 6),
        num_frames=count,
        duration=round(count / fps, 6),
    )
