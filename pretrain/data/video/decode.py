"""Decode only the frames a clip needs, straight from a shard sample's bytes, with PyAV.

For each run of wanted frames we seek to the keyframe at or before the run's first frame, decode
forward (skipping non-reference pictures that are not wanted, e.g. most H.264 B-frames), keep
just the wanted frames and stop right after the run's last frame. Frames are identified by their
presentation time, so the result is the same whether or not the container could seek.

`decode_window` hands the frames over as the decoder made them (`frames.DecodedFrames` renders
crops from them); `decode_frames` converts them to RGB arrays.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

import av
import numpy as np

from pretrain.data.stage_clock import CLOCK
from pretrain.data.video.frames import DecodedFrames, frames_to_rgb

log = logging.getLogger(__name__)

# Runs of wanted frames further apart than this are reached by a new seek instead of decoding
# everything in between (multi-view clips spread over a long video).
RESEEK_GAP = 96


VideoBytes = bytes | str | os.PathLike | BinaryIO
"""A shard sample's bytes, or a file (path or seekable binary file object, e.g. a tar member):
files are read as the decoder needs them, never whole."""


class DecodeError(RuntimeError):
    """A video that cannot be decoded (corrupt bytes, no video stream, no frames)."""


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int


def probe(data: VideoBytes) -> VideoInfo:
    """Frame count, rate and size from the container header (no decoding)."""
    with _open(data) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = stream.frames or int(round(float(container.duration or 0) / av.time_base * fps))
        return VideoInfo(frames, fps, stream.codec_context.width, stream.codec_context.height)


def decode_frames(
    data: VideoBytes,
    indices: Sequence[int],
    size: tuple[int, int] | None = None,
    threads: int = 1,
    planar: bool = False,
) -> np.ndarray:
    """RGB frames at `indices` (any order, repeats allowed) as uint8 `(len(indices), H, W, 3)`,
    or `(len(indices), 3, H, W)` when `planar`: what a decoder library hands back.

    `size=(width, height)` resizes during colour conversion. Indices past the real end of the
    video (a header that over-counts) get the last decoded frame.
    """
    frames = decode_window(data, indices, threads)
    rgb = frames_to_rgb(frames.frames, size or frames.native)  # (T, H, W, 3)
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2)) if planar else rgb


def decode_window(data: VideoBytes, indices: Sequence[int], threads: int = 1) -> DecodedFrames:
    """The frames at `indices` (any order, repeats allowed) as the decoder made them, for
    rendering crops (`DecodedFrames.render`). Indices past the real end of the video get the
    last decoded frame."""
    wanted = sorted(set(int(i) for i in indices))
    if not wanted or wanted[0] < 0:
        raise ValueError(f"frame indices must be non-negative and non-empty, got {list(indices)[:8]}")
    decoded = dict(iter_wanted_frames(data, wanted, threads))
    if not decoded:  # every wanted frame lies past the real end (a truncated file's header over-counts)
        decoded = _last_frame(data, wanted[0])
    _fill_missing(decoded, wanted)
    return DecodedFrames([decoded[int(i)] for i in indices])


def _last_frame(data: VideoBytes, index: int) -> dict[int, av.VideoFrame]:
    """The video's real last frame, standing in at `index` (decodes the whole stream: rare)."""
    last = None
    try:
        with _open(data) as container:
            for last in container.decode(container.streams.video[0]):  # noqa: B007  (the last one is kept)
                pass
    except av.error.FFmpegError:
        pass  # a damaged tail: the last frame decoded before it
    if last is None:
        raise DecodeError("no frame could be decoded")
    return {index: last}


def count_decoded_frames(data: VideoBytes, indices: Sequence[int], threads: int = 1) -> int:
    """Decode the wanted frames and nothing else (no colour conversion): the benchmark's floor."""
    wanted = sorted(set(int(i) for i in indices))
    return sum(1 for _ in iter_wanted_frames(data, wanted, threads))


def iter_wanted_frames(
    data: VideoBytes, wanted: list[int], threads: int = 1
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield `(index, frame)` for every index in sorted `wanted` that the video has."""
    try:
        with CLOCK.stage("demux"):
            container = _open(data)
        with container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = threads
            if threads > 1:
                stream.thread_type = "AUTO"
            timing = _FrameTiming(stream)
            for run in _runs(wanted):
                yield from _decode_run(container, stream, timing, run)
    except av.error.FFmpegError as error:
        raise DecodeError(f"FFmpeg could not decode the video: {error}") from error


def _open(data: VideoBytes) -> av.container.InputContainer:
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = io.BytesIO(data)
    elif isinstance(data, os.PathLike):
        data = os.fspath(data)
    elif not isinstance(data, str):
        data.seek(0)  # a file object read before (probe, then decode) starts over
    try:
        container = av.open(data, mode="r")
    except (av.error.FFmpegError, ValueError) as error:
        raise DecodeError(f"not a readable video container: {error}") from error
    if not container.streams.video:
        container.close()
        raise DecodeError("the container has no video stream")
    return container


class _FrameTiming:
    """Maps presentation timestamps to frame indices (0 = first frame), in floats: Fraction
    arithmetic per packet would cost as much as decoding a small frame."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        fps = stream.average_rate or stream.guessed_rate or 25
        self.frames_per_tick = float(stream.time_base * fps)
        self.start = stream.start_time or 0

    def index(self, pts: int) -> int:
        return int(round((pts - self.start) * self.frames_per_tick))

    def pts(self, index: int) -> int:
        return int(self.start + index / self.frames_per_tick)


def _runs(wanted: list[int]) -> list[list[int]]:
    """Split sorted indices where the gap is large enough to be worth a new seek."""
    runs = [[wanted[0]]]
    for index in wanted[1:]:
        if index - runs[-1][-1] > RESEEK_GAP:
            runs.append([index])
        else:
            runs[-1].append(index)
    return runs


def _decode_run(
    container, stream, timing: _FrameTiming, run: list[int]
) -> Iterator[tuple[int, av.VideoFrame]]:
    first, last = run[0], run[-1]
    remaining = set(run)
    if first > 0:
        # backward=True lands on the keyframe at or before the target: all references are decoded.
        with CLOCK.stage("demux"):
            container.seek(timing.pts(first), stream=stream, backward=True, any_frame=False)
    context = stream.codec_context
    previous = -1
    for packet in CLOCK.timed("demux", container.demux(stream)):
        if packet.pts is not None and context.thread_count == 1:
            # Pictures nobody wants and nothing references (B-frames) need not be decoded.
            context.skip_frame = "DEFAULT" if timing.index(packet.pts) in remaining else "NONREF"
        with CLOCK.stage("decode"):
            frames = packet.decode()
        for frame in frames:
            index = timing.index(frame.pts) if frame.pts is not None else previous + 1
            previous = index
            if index in remaining:
                remaining.discard(index)
                yield index, frame
            if index >= last or not remaining:
                context.skip_frame = "DEFAULT"
                return
    context.skip_frame = "DEFAULT"


def _fill_missing(decoded: dict, wanted: list[int]) -> None:
    """Indices the video lacks take the nearest earlier decoded frame (or the first one)."""
    missing = [i for i in wanted if i not in decoded]
    if not missing:
        return
    log.debug("video lacks %d of %d wanted frames; repeating neighbours", len(missing), len(wanted))
    have = sorted(decoded)
    for index in missing:
        earlier = [h for h in have if h < index]
        decoded[index] = decoded[earlier[-1] if earlier else have[0]]
