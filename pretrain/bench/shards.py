"""`tubelet bench shards SRC`: videos/s and MB/s of shard building, passthrough vs re-encode, with 1
and N worker processes, all measured in this process against the passthrough/1-worker baseline."""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from pretrain.data.generated.corpora import write_ucf101_tree
from pretrain.data.generated.synthetic import textured_pan_frames
from pretrain.data.shards import BuildOptions, build_shards
from pretrain.data.shards.listing import is_video_name
from pretrain.data.shards.local_pool import pool_context

log = logging.getLogger(__name__)


@dataclass
class ShardBenchRow:
    mode: str
    workers: int
    videos: int
    input_mb: float
    output_mb: float
    seconds: float
    videos_per_s: float
    input_mb_per_s: float
    speedup: float
    """Videos/s relative to passthrough with 1 worker."""
    scaling: float
    """Videos/s relative to the same mode with 1 worker."""


def detect_source(src: Path) -> str:
    if (src / "UCF-101").is_dir():
        return "ucf101"
    if (src / "testTrainMulti_7030_splits").is_dir() or any(src.glob("*/testTrainMulti_7030_splits")):
        return "hmdb51"
    return "folder"


def generate_corpus(src: Path, videos: int, num_frames: int = 100, bit_rate: int = 1_000_000) -> None:
    """A UCF101-layout corpus of textured camera pans at 320x240, 25 fps, ~1 Mbit/s MPEG-4 AVI
    (what UCF101 clips look like to a decoder; flat synthetic shapes decode unrealistically fast)."""
    classes = max(1, videos // 4)
    log.info("writing %d textured 320x240 videos to %s", classes * 4, src)
    write_ucf101_tree(
        src,
        classes=classes,
        groups=(1, 8, 15, 22),
        bit_rate=bit_rate,
        frames=lambda class_index, seed: textured_pan_frames(num_frames, seed=seed),
    )


def _run(
    source: str, src: Path, mode: str, workers: int, shard_size_mb: float, resize_short: int, scratch: Path
) -> dict:
    out = scratch / f"{mode}-{workers}"
    reencode = {"resize_short": resize_short, "gop_seconds": 0.5} if mode == "reencode" else {}
    options = BuildOptions(workers=workers, shard_size_mb=shard_size_mb, **reencode)
    started = time.perf_counter()
    summary = build_shards(source, str(src), str(out), options)
    return {
        "videos": summary.videos,
        "seconds": time.perf_counter() - started,
        "output_mb": summary.bytes / 1e6,
    }


def _burn(iterations: int) -> int:
    total = 0
    for i in range(iterations):
        total += i * i
    return total


def cpu_scaling_ceiling(workers: int, iterations: int = 3_000_000) -> float:
    """How much faster `workers` processes finish `workers` units of pure CPU work than one process
    does, right now: the best speedup any N-worker row can show on this (possibly shared) machine."""
    if workers <= 1:
        return 1.0
    started = time.perf_counter()
    for _ in range(workers):
        _burn(iterations)
    serial = time.perf_counter() - started
    with ProcessPoolExecutor(workers, mp_context=pool_context()) as pool:
        list(pool.map(_burn, [1] * workers))  # start the workers before timing
        started = time.perf_counter()
        list(pool.map(_burn, [iterations] * workers))
        parallel = time.perf_counter() - started
    return round(serial / parallel, 2)


def _input_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*") if is_video_name(p.name)) / 1e6


def bench_shards(
    src: str,
    workers: int = 2,
    resize_short: int = 160,
    source: str | None = None,
    generate: int | None = None,
    num_frames: int = 100,
) -> list[ShardBenchRow]:
    """Build SRC four times (passthrough/re-encode x 1/N workers) into a scratch directory."""
    root = Path(src)
    if generate and not root.exists():
        generate_corpus(root, generate, num_frames)
    source = source or detect_source(root)
    input_mb = _input_mb(root)
    # Shards are the unit of parallel work: about four per worker keeps every worker busy.
    shard_size_mb = max(input_mb / (4 * workers), 0.01)
    rows: list[ShardBenchRow] = []
    with tempfile.TemporaryDirectory(prefix="tubelet-bench-shards-") as scratch:
        for mode in ("passthrough", "reencode"):
            for count in sorted({1, workers}):
                run = _run(source, root, mode, count, shard_size_mb, resize_short, Path(scratch))
                videos_per_s = run["videos"] / run["seconds"]
                baseline = rows[0].videos_per_s if rows else videos_per_s
                one_worker = next((r.videos_per_s for r in rows if r.mode == mode), videos_per_s)
                rows.append(
                    ShardBenchRow(
                        mode,
                        count,
                        run["videos"],
                        round(input_mb, 2),
                        round(run["output_mb"], 2),
                        round(run["seconds"], 3),
                        round(videos_per_s, 2),
                        round(input_mb / run["seconds"], 2),
                        round(videos_per_s / baseline, 2),
                        round(videos_per_s / one_worker, 2),
                    )
                )
    return rows


def rows_as_dicts(rows: list[ShardBenchRow]) -> list[dict]:
    return [asdict(row) for row in rows]
