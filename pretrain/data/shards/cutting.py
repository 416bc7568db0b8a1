"""Cut one span out of a source video: packets copied between two keyframes (no quality loss,
no decoding), or frames decoded from the nearest earlier keyframe and re-encoded exactly.

Both seek first, so cutting segment k of a two-hour film reads about one segment's worth of bytes.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av

from pretrain.data.shards.encode import ReencodeOptions, encode_frames
from pretrain.data.shards.spans import Span
from pretrain.data.video.probe import ProbeError, VideoInfo, probe_video, stream_rate

# Container of a stream-copied segment, by the source's suffix (others go into Matroska).
COPY_FORMATS = {"mp4": "mp4", "m4v": "mp4", "mov": "mov", "avi": "avi", "mkv": "matroska", "webm": "webm"}


def _frame_index(pts: int | None, origin: int, stream, fps: float) -> int:
    return round(float((pts - origin) * stream.time_base) * fps) if pts is not None else -1


def _open_at(file: str, start: float):
    """(container, stream, fps, origin pts) positioned at the keyframe at or before `start`."""
    container = av.open(file)
    stream = container.streams.video[0]
    fps = stream_rate(stream)
    origin = stream.start_time or 0
    if start > 0:
        container.seek(origin + int(start / stream.time_base), stream=stream, backward=True, any_frame=False)
    return container, stream, fps, origin


def copy_span(file: str, span: Span, ext: str) -> tuple[bytes, str]:
    """(bytes, extension) of the packets from the keyframe at `span.start` (decode order) up to the
    keyframe at `span.end`, timestamps shifted to start at 0."""
    fmt = COPY_FORMATS.get(ext, "matroska")
    out_ext = ext if ext in COPY_FORMATS else "mkv"
    buffer = io.BytesIO()
    container, stream, fps, origin = _open_at(file, span.start)
    first, last = round(span.start * fps), round(span.end * fps)
    with container, av.open(buffer, mode="w", format=fmt) as output:
        out_stream = output.add_stream_from_template(stream)
        offset, copied = None, 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            index = _frame_index(packet.pts, origin, stream, fps)
            if offset is None:
                if not (packet.is_keyframe and index >= first):
                    continue  # before the span (the seek may land a keyframe early)
                offset = packet.pts
            elif packet.is_keyframe and index >= last:
                break
            packet.pts = None if packet.pts is None else packet.pts - offset
            packet.dts = None if packet.dts is None else packet.dts - offset
            packet.stream = out_stream
            output.mux(packet)
            copied += 1
    if not copied:
        raise ProbeError(f"no keyframe at {span.start:.3f} s")
    return buffer.getvalue(), out_ext


def decode_span(file: str, span: Span) -> Iterator[tuple[object, av.VideoFrame]]:
    """(stream, frame) for frames with index in [round(start * fps), round(end * fps))."""
    container, stream, fps, origin = _open_at(file, span.start)
    first, last = round(span.start * fps), round(span.end * fps)
    with container:
        for frame in container.decode(stream):
            index = _frame_index(frame.pts, origin, stream, fps)
            if index >= last:
                break
            if index >= first:
                yield stream, frame


def parent_info(file: str, span: Span) -> VideoInfo:
    """The source's stream description, restricted to the span (the sample's `original`)."""
    with av.open(file) as container:
        stream = container.streams.video[0]
        fps = stream_rate(stream)
        frames = round(span.end * fps) - round(span.start * fps)
        return VideoInfo(
            stream.codec_context.name,
            stream.codec_context.width,
            stream.codec_context.height,
            round(fps, 6),
            frames,
            round(span.duration, 6),
        )


def cut_span(
    file: str, span: Span, probe: str, reencode: ReencodeOptions | None
) -> tuple[bytes, VideoInfo, str, VideoInfo | None]:
    """(video bytes, their info, extension, original info or None). A damaged part raises
    ProbeError or av.FFmpegError, which skips this span only."""
    if span.exact:
        encoded, info = encode_frames(decode_span(file, span), reencode or ReencodeOptions())
        return encoded, info, "mp4", parent_info(file, span)
    data, ext = copy_span(file, span, Path(file).suffix.lower().lstrip("."))
    return data, probe_video(data, probe), ext, None
