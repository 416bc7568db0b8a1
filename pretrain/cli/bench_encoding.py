"""`tubelet bench encoding SRC`: the training encoding's levers, each alone and together, against
today's `--resize-short 320 --reencode`: clips per CPU-second, GB per hour, PSNR of what the model sees."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from pretrain.errors import UserError


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "encoding", help="clips per CPU-second, GB/hour and PSNR of each training-encoding lever"
    )
    parser.add_argument("src", help="a folder of videos (real ones: the figures are only as real as they)")
    parser.add_argument("--workdir", default=None, help="where the variants' shards go (default: a temp dir)")
    parser.add_argument("--clips", type=int, default=48, help="clips timed per variant and num_sample")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from pretrain.bench.encoding import build_variants, format_rows, measure

    if not Path(args.src).is_dir():
        raise UserError(f"{args.src}: not a folder of videos")
    with tempfile.TemporaryDirectory(prefix="tubelet-encoding-") as scratch:
        workdir = Path(args.workdir or scratch)
        rows = measure(build_variants(Path(args.src), workdir), args.clips)
    load = os.getloadavg()[0]
    if args.json:
        print(json.dumps({"src": args.src, "load_average": load, "rows": [asdict(r) for r in rows]}))
        return 0
    print(format_rows(rows))
    print(
        f"{os.cpu_count()} CPUs, load average {load:.2f}; in-process loader (one core), VideoMAE-B clip "
        "(16 frames, data.stride 4, 224 px); PSNR: first test view vs the original bytes' view"
    )
    return 0
