"""`tubelet bench data SHARDS`: clips/s of the streaming pipeline vs its decode-only floor and
VideoMAE-style decord loading, repeated sampling, and decode-once multi-view."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pretrain.errors import UserError


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "data", help="clips/s of the data pipeline vs decode-only floor and decord baseline"
    )
    parser.add_argument("shards", help="shard directory (with manifest.json)")
    parser.add_argument(
        "--workers", type=int, default=0, help="data-loader workers for every run (default 0: in-process)"
    )
    parser.add_argument(
        "--clips", type=int, default=24, help="clips timed per measurement and round (default 24)"
    )
    parser.add_argument(
        "--multiview-videos", type=int, default=3, help="videos timed for multi-view (default 3)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds; each rate is its best round, each ratio the median of per-round ratios (default 3)",
    )
    parser.add_argument(
        "--generate",
        choices=("avi", "h264"),
        default=None,
        help="if SHARDS has no manifest, first encode a textured benchmark corpus there: "
        "avi = MPEG-4 320x240 ~1 Mbit/s, h264 = H.264 640x360 ~2 Mbit/s",
    )
    parser.add_argument("--videos", type=int, default=8, help="videos in a generated corpus (default 8)")
    parser.add_argument(
        "--frames", type=int, default=180, help="frames per generated video (default 180, 7.2 s)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: CPU ms per clip in each loader stage (read, demux, decode, colour conversion, "
        "crop+resize, masks, collate, shared memory) at data.num_sample 1 and 4",
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    from pretrain.bench.data import bench_data
    from pretrain.bench.data_corpus import write_bench_corpus

    if args.workers < 0 or min(args.clips, args.multiview_videos, args.rounds) < 1:
        raise UserError("--workers must be >= 0; --clips, --multiview-videos and --rounds >= 1")
    shards = Path(args.shards)
    if not (shards / "manifest.json").exists() and not args.generate:
        raise UserError(f"{shards}: no manifest.json (build shards first, or pass --generate avi|h264)")
    if args.generate:
        write_bench_corpus(args.generate, shards, args.videos, args.frames)
    if args.profile:
        return _profile(str(shards), args.clips, args.json)
    result = bench_data(str(shards), args.workers, args.clips, args.multiview_videos, args.rounds)
    figures = result.as_dict()
    if args.json:
        print(json.dumps(figures, indent=1))
        return 0
    _print_table(figures)
    return 0


def _profile(shards: str, clips: int, as_json: bool) -> int:
    from dataclasses import asdict

    from pretrain.bench.data_profile import format_profiles, profile_stages

    profiles = [profile_stages(shards, num_sample, clips) for num_sample in (1, 4)]
    if as_json:
        print(
            json.dumps(
                {
                    "shards": shards,
                    "load_average": os.getloadavg()[0],
                    "profiles": [asdict(p) for p in profiles],
                }
            )
        )
    else:
        print(format_profiles(profiles, shards))
        print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; in-process loader (one core)")
    return 0


def _print_table(f: dict) -> None:
    print(f"{f['shards']}: {f['corpus']}")
    print(
        f"{os.cpu_count()} CPUs, load average {f['load_average']}, workers {f['workers']}, "
        f"{f['clips']} clips per run, {f['rounds']} interleaved rounds (rates: best round; "
        "ratios: median of per-round ratios); "
        "VideoMAE-B pretraining clip: 16 frames, stride 4, 224 px, mask 0.9"
    )
    rows = [
        ("pipeline", f["clips_per_s"], f"{f['pipeline_over_floor']:.2f}x floor time (target <= 1.25)"),
        (
            "pipeline, float batches",
            f["clips_per_s_float"],
            f"{f['float_over_floor']:.2f}x floor time (data.normalize_on_device=false)",
        ),
        ("floor (decode window only)", f["floor_clips_per_s"], ""),
        (
            "decode window + RGB frames",
            f["decode_rgb_clips_per_s"],
            f"{f['decode_rgb_over_floor']:.2f}x floor time (reference: what a decoder library returns)",
        ),
        (
            "baseline (decord per file)",
            f["baseline_clips_per_s"],
            f"pipeline is {f['speedup_vs_baseline']:.2f}x the baseline",
        ),
        (
            "pipeline, num_sample=4",
            f["clips_per_s_num_sample4"],
            f"{f['repeated_sampling_speedup']:.2f}x num_sample=1 (target >= 2.5)",
        ),
        (
            "baseline, num_sample=4",
            f["baseline_clips_per_s_num_sample4"],
            f"pipeline is {f['speedup_vs_baseline_num_sample4']:.2f}x the baseline",
        ),
    ]
    unit = (
        "clips per CPU-second (workers 0: all work in this process)"
        if f["workers"] == 0
        else "clips/s (wall)"
    )
    print(f"rates are {unit}; multi-view in videos per CPU-second; uint8 batches unless said")
    print(f"{'run':<30}{'clips/s':>10}  note")
    for name, rate, note in rows:
        print(f"{name:<30}{rate:>10.2f}  {note}")
    print(
        f"multi-view ({f['views']} views): decode once {f['multiview_once_videos_per_s']:.2f} videos/s; "
        f"each view decoding its own window {f['multiview_per_view_videos_per_s']:.2f} -> "
        f"{f['multiview_speedup']:.2f}x (target >= 5); VideoMAE's test loader (whole video per view) "
        f"{f['multiview_videomae_videos_per_s']:.2f} -> {f['multiview_speedup_vs_videomae']:.2f}x"
    )
