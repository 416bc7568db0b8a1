"""`tubelet bench cores`: CPU cores one GPU needs so that decoding never starves it."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from pretrain.runtime.device_peaks import PEAK_TFLOPS


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "cores",
        help="CPU cores per GPU for pretraining: GPU clips/s over one core's decoded clips/s",
        description="cores per GPU = clips/s one GPU trains (measured by `bench model`, or analytic FLOPs at a "
        "stated MFU) / clips per CPU-second of the pipeline on shards of the recommended encoding "
        "(--resize-short 320 --reencode), at data.num_sample 1 and 4.",
    )
    parser.add_argument("--size", default="b", help="model size (default b)")
    parser.add_argument(
        "--backbone", default="vit", help="label of the backbone the figure is for (default vit)"
    )
    parser.add_argument("--mask-ratio", type=float, default=0.9)
    parser.add_argument(
        "--mfu", type=float, default=0.4, help="assumed MFU for the analytic GPU rate (default 0.4)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=PEAK_TFLOPS["H100"]["bf16"],
        help="GPU dense bf16 peak (default H100/H200)",
    )
    parser.add_argument(
        "--from-bench", help="a `tubelet bench model --json` result: use its measured step time"
    )
    parser.add_argument(
        "--core-rates",
        help="clips per CPU-second per num_sample, e.g. 1=4.1,4=11.8 "
        "(default: measure them here on a generated corpus)",
    )
    parser.add_argument(
        "--shards", help="shards of the recommended encoding to measure on (default: generate)"
    )
    parser.add_argument("--clips", type=int, default=48, help="clips timed per num_sample (default 48)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _parse_rates(text: str) -> dict[str, float]:
    from pretrain.cli import UserError

    try:
        rates = {key.strip(): float(value) for key, value in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise UserError(f"--core-rates {text!r} must look like 1=4.1,4=11.8") from None
    if not rates or min(rates.values()) <= 0:
        raise UserError(f"--core-rates {text!r}: rates must be > 0")
    return rates


def _run(args: argparse.Namespace) -> int:
    from pretrain.bench.cores import (
        as_dict,
        core_clips_per_s,
        cores_figure,
        format_figure,
        gpu_rate,
        recommended_shards,
    )

    gpu = gpu_rate(args.size, args.mask_ratio, args.mfu, args.peak_tflops, args.from_bench)
    if args.core_rates:
        per_core = _parse_rates(args.core_rates)
    else:
        with tempfile.TemporaryDirectory(prefix="tubelet-cores-") as workdir:
            shards = args.shards or str(recommended_shards(Path(workdir)))
            per_core = core_clips_per_s(shards, clips=args.clips)
    size = json.loads(Path(args.from_bench).read_text())["size"] if args.from_bench else args.size
    figure = cores_figure(size, args.backbone, gpu, per_core)
    print(json.dumps(as_dict(figure)) if args.json else format_figure(figure))
    return 0
