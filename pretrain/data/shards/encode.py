"""Optional re-encode: H.264 in MP4, short side resized, frame rate changed, short keyframe interval
(so a reader seeking to a random clip decodes at most `gop_seconds` of extra frames).

The training encoding (`TRAIN_ENCODING`, `shards build --train-encoding`) also keeps only every
`stride`-th frame, places a keyframe every `gop_frames` stored frames and writes no B-frames, so a
pretraining clip decodes about its own frames and nothing else (README, "The training encoding")."""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction

import av

from pretrain.data.shards.errors import ShardsError
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


FPS_RANGE = (0.1, 1000.0)
"""Frame rates a re-encode reads and writes: H.264 time bases outside it are meaningless (an
average rate of 10/25001 fps would round to 0 and divide by it)."""


def fps_problem(fps: float) -> str | None:
    low, high = FPS_RANGE
    return None if low <= fps <= high else f"frame rate {fps:g} fps is outside {low:g}-{high:g}"


@dataclass(frozen=True)
class EncodeOptions:
    """How a user asks for a video to be re-encoded to H.264 MP4; `BuildOptions` extends it (one
    owner of these options, their defaults, checks and flag help)."""

    resize_short: int | None = None
    """Re-encode with this short side (pixels); never upscales (unset: keep the size)."""
    fps: float | None = None
    """Re-encode at this frame rate, dropping or repeating frames (unset: keep the input rate)."""
    crf: int = 23
    """x264 quality when re-encoding, lower is better (bigger files; 18-28 is typical)."""
    preset: str = "veryfast"
    """x264 speed/size preset when re-encoding: ultrafast ... veryslow."""
    gop_seconds: float = 0.5
    """Keyframe interval (seconds) when re-encoding."""

    def __post_init__(self) -> None:
        checks = [
            (
                self.resize_short is None or self.resize_short >= 2,
                f"resize_short={self.resize_short} must be >= 2",
            ),
            (self.fps is None or not fps_problem(self.fps), f"fps={self.fps}: {fps_problem(self.fps or 0)}"),
            (0 <= self.crf <= 51, f"crf={self.crf} must be in 0..51"),
            (self.gop_seconds > 0, f"gop_seconds={self.gop_seconds} must be > 0"),
            (self.preset in X264_PRESETS, f"preset={self.preset!r}: choose one of {', '.join(X264_PRESETS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ShardsError(message)


@dataclass(frozen=True)
class ReencodeOptions(EncodeOptions):
    """Everything the encoder is told: the user's `EncodeOptions` plus what only the training
    encoding (`training_encoding`) sets."""

    stride: int = 1
    """Keep source frames 0, stride, 2 * stride, ... (stored rate = source rate / stride)."""
    gop_frames: int | None = None
    """Keyframe interval in stored frames (replaces gop_seconds)."""
    bframes: int | None = None
    """B-frames between references; None keeps the preset's choice."""
    tune: str | None = None
    """x264 tune (fastdecode: CAVLC and no deblocking, cheaper to decode, bigger)."""

    def fingerprint_fields(self) -> dict:
        """The fields that change the bytes; the training-encoding ones only when set, so builds
        made before they existed keep their fingerprints (and resume)."""
        fields = asdict(self)
        for name, default in (("stride", 1), ("gop_frames", None), ("bframes", None), ("tune", None)):
            if fields[name] == default:
                del fields[name]
        return fields


TRAIN_SHORT_SIDE = 256
"""Short side of the training encoding: 224 / 0.875, where VideoMAE's multi-scale crop (side =
short side x 1, 0.875, 0.75 or 0.66, 224 px out) takes its 0.875 crop at exactly 224 px and its
full-side crop shrinks; crop boxes are fractions of the short side, so every crop covers the same
part of the scene as at 320 (README, "The training encoding", for the measured difference)."""
TRAIN_STRIDE = 4
"""The recipes' data.stride: one stored frame per sampled frame."""
TRAIN_GOP_FRAMES = 8
"""Keyframe interval in stored frames (measured: README, "The training encoding")."""


def training_encoding(stride: int, short_side: int | None, crf: int, preset: str) -> ReencodeOptions:
    """`shards build --train-encoding`: every `stride`-th frame, short side `short_side` (default
    `TRAIN_SHORT_SIDE`), a keyframe every `TRAIN_GOP_FRAMES` stored frames, no B-frames, x264's
    fastdecode tune (CAVLC, no deblocking: 1.7x faster to decode alone, same PSNR; measured)."""
    return ReencodeOptions(
        resize_short=short_side or TRAIN_SHORT_SIDE,
        crf=crf,
        preset=preset,
        stride=stride,
        gop_frames=TRAIN_GOP_FRAMES,
        bframes=0,
        tune="fastdecode",
    )


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
                if fps_problem(in_fps):  # the video is skipped and listed, the build goes on
                    raise ProbeError(fps_problem(in_fps))
                out_fps = options.fps or in_fps / options.stride
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
    stream.gop_size = options.gop_frames or max(1, int(round(float(rate) * options.gop_seconds)))
    stream.thread_count = 1
    settings = {
        "crf": str(options.crf),
        "preset": options.preset,
        "keyint_min": str(stream.gop_size),
        "sc_threshold": "0",
    }
    if options.bframes is not None:
        settings["bf"] = str(options.bframes)
    if options.tune is not None:
        settings["tune"] = options.tune
    stream.options = settings
    return stream
