"""`tubelet bench shards SRC --long-video MINUTES`: segmenting throughput in hours of video per
minute on one generated long video with known hard cuts (shots of 2-12 s): fixed segments by stream
copy (each segment still decoded once by the default full probe; `--probe fast` only demuxes),
fixed segments re-encoded (exact cuts), shots (`--scenes`, stream copy), and the shot-change
detector alone; all in this process, ratios against the stream-copy run. Every build includes its
planning scan (one demux of the whole video)."""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pretrain.data.generated.long_video import SceneVideo, write_scene_video
from pretrain.data.shards import BuildOptions, build_shards
from pretrain.data.video.scenes import detect_cuts

log = logging.getLogger(__name__)


@dataclass
class LongVideoRow:
    mode: str
    samples: int
    video_hours: float
    seconds: float
    hours_per_minute: float
    vs_copy: float
    """Throughput relative to fixed segments by stream copy."""


def long_video(folder: Path, minutes: float, fps: int = 25, size: tuple[int, int] = (240, 320)) -> SceneVideo:
    """A generated H.264 video of `minutes` with a keyframe every 2 s and shots of 2-12 s."""
    path = folder / "long.mp4"
    frames = int(minutes * 60 * fps)
    rng = np.random.default_rng(0)
    shots: list[int] = []
    while sum(shots) < frames:
        shots.append(int(rng.integers(2 * fps, 12 * fps)))
    shots[-1] -= sum(shots) - frames
    log.info("writing a %.1f min %dx%d video (%d shots) to %s", minutes, size[1], size[0], len(shots), path)
    return write_scene_video(path, shots, fps=fps, size=size, gop=2 * fps)


def _row(mode: str, samples: int, hours: float, seconds: float, copy_rate: float | None) -> LongVideoRow:
    rate = hours * 60 / seconds  # hours of video per minute of building
    return LongVideoRow(
        mode,
        samples,
        round(hours, 4),
        round(seconds, 2),
        round(rate, 3),
        round(rate / copy_rate, 3) if copy_rate else 1.0,
    )


def bench_long_video(
    src: str, minutes: float = 5.0, segment_seconds: float = 10.0, workers: int = 1
) -> list[LongVideoRow]:
    folder = Path(src)
    folder.mkdir(parents=True, exist_ok=True)
    video = long_video(folder, minutes)
    hours = video.duration / 3600
    fixed = {"segment_seconds": segment_seconds}
    runs = [
        ("segments, stream copy", fixed),
        ("segments, stream copy, --probe fast", {**fixed, "probe": "fast"}),
        ("segments, re-encode", {**fixed, "reencode": True}),
        ("scenes, stream copy", {"scenes": True}),
    ]
    # Shards are the unit of parallel work: about four per worker.
    shard_size_mb = max(video.path.stat().st_size / 1e6 / (4 * workers), 0.01)
    rows: list[LongVideoRow] = []
    with tempfile.TemporaryDirectory(prefix="tubelet-bench-long-") as scratch:
        for mode, options in runs:
            started = time.perf_counter()
            out = Path(scratch) / mode.replace(", ", "-").replace(" ", "_")
            summary = build_shards(
                "folder",
                str(folder),
                str(out),
                BuildOptions(workers=workers, shard_size_mb=shard_size_mb, **options),
            )
            rows.append(
                _row(
                    mode,
                    summary.segments,
                    hours,
                    time.perf_counter() - started,
                    rows[0].hours_per_minute if rows else None,
                )
            )
    started = time.perf_counter()
    cuts = detect_cuts(str(video.path))
    rows.append(
        _row(
            f"shot detection only ({len(set(cuts) & set(video.cuts))}/{len(video.cuts)} cuts exact)",
            len(cuts) + 1,
            hours,
            time.perf_counter() - started,
            rows[0].hours_per_minute,
        )
    )
    return rows


def long_rows_as_dicts(rows: list[LongVideoRow]) -> list[dict]:
    return [asdict(row) for row in rows]
