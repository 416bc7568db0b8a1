"""`tubelet bench shards SRC`: shard-building throughput, passthrough vs re-encode, 1 vs N workers."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pretrain.errors import UserError


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "shards", help="videos/s and MB/s of `shards build` (passthrough, re-encode; 1 and N workers)"
    )
    parser.add_argument("src", help="corpus directory (folder, UCF101 or HMDB51 layout)")
    parser.add_argument("--workers", type=int, default=2, help="N for the N-worker runs (default 2)")
    parser.add_argument("--resize-short", type=int, default=160, help="short side of the re-encode runs")
    parser.add_argument(
        "--source",
        choices=("folder", "ucf101", "hmdb51"),
        default=None,
        help="layout of SRC (default: detected)",
    )
    parser.add_argument(
        "--generate",
        type=int,
        default=None,
        metavar="N",
        help="if SRC does not exist, write N textured 320x240 videos (UCF101 layout) there first",
    )
    parser.add_argument("--frames", type=int, default=100, help="frames per generated video")
    parser.add_argument(
        "--long-video",
        type=float,
        default=None,
        metavar="MINUTES",
        help="instead: write a generated MINUTES-long 320x240 video with shots into SRC and measure "
        "segmenting (stream copy, re-encode, --scenes) in hours of video per minute",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=_bench)


def _bench_long(args: argparse.Namespace) -> int:
    from pretrain.bench.long_video import bench_long_video, long_rows_as_dicts

    rows = bench_long_video(args.src, args.long_video, workers=args.workers)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": long_rows_as_dicts(rows),
                    "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()[0],
                },
                indent=1,
            )
        )
        return 0
    print(
        f"{args.src}: {args.long_video:g} min generated video, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, {args.workers} worker(s); segments of 10 s"
    )
    print(f"{'mode':<48}{'samples':>8}{'s':>9}{'h video/min':>13}{'vs copy':>9}")
    for row in rows:
        print(
            f"{row.mode:<48}{row.samples:>8}{row.seconds:>9.2f}{row.hours_per_minute:>13.3f}{row.vs_copy:>8.3f}x"
        )
    return 0


def _bench(args: argparse.Namespace) -> int:
    from pretrain.bench.shards import bench_shards, cpu_scaling_ceiling, rows_as_dicts

    if args.long_video is not None:
        if args.long_video <= 0:
            raise UserError(f"--long-video={args.long_video} must be > 0")
        return _bench_long(args)
    if not Path(args.src).exists() and not args.generate:
        raise UserError(f"{args.src}: no such corpus (pass --generate N to write a synthetic one)")
    if args.workers < 1:
        raise UserError(f"--workers={args.workers} must be >= 1")
    rows = bench_shards(args.src, args.workers, args.resize_short, args.source, args.generate, args.frames)
    ceiling = cpu_scaling_ceiling(args.workers)
    if args.json:
        print(
            json.dumps(
                {
                    "rows": rows_as_dicts(rows),
                    "cpu_scaling_ceiling": ceiling,
                    "cpus": os.cpu_count(),
                    "load_average": os.getloadavg()[0],
                },
                indent=1,
            )
        )
        return 0
    print(
        f"{args.src}: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"re-encode = H.264, short side {args.resize_short}, keyframe every 0.5 s"
    )
    print(
        f"ceiling: {args.workers} processes of pure CPU work ran {ceiling:.2f}x faster than 1 on this "
        "machine just now"
    )
    print(
        f"{'mode':<12}{'workers':>8}{'videos':>8}{'in MB':>9}{'out MB':>9}{'s':>8}"
        f"{'videos/s':>10}{'MB/s':>8}{'vs base':>9}{'vs 1 worker':>13}"
    )
    for row in rows:
        print(
            f"{row.mode:<12}{row.workers:>8}{row.videos:>8}{row.input_mb:>9.1f}{row.output_mb:>9.1f}"
            f"{row.seconds:>8.2f}{row.videos_per_s:>10.1f}{row.input_mb_per_s:>8.1f}{row.speedup:>8.2f}x"
            f"{row.scaling:>12.2f}x"
        )
    print("baseline: passthrough, 1 worker (MB/s counts input bytes)")
    return 0
