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
    parser.add_argument("--shards", help="shards to measure on (default: generate, see --encoding)")
    parser.add_argument(
        "--encoding",
        choices=("today", "train"),
        default="today",
        help="generated shards' encoding: today's --resize-short 320 --reencode, or --train-encoding",
    )
    parser.add_argument(
        "--gpu-decode",
        action="store_true",
        help="also measure data.decode_device=cuda (NVDEC clips/s, the loader's remaining CPU work)",
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
        gpu_decode_rates,
        gpu_rate,
        recommended_shards,
    )

    if args.gpu_decode:  # before building or measuring anything
        from pretrain.data.video.gpu_decode import require_gpu_decoding

        require_gpu_decoding()
    gpu = gpu_rate(args.size, args.mask_ratio, args.mfu, args.peak_tflops, args.from_bench)
    decode = None
    with tempfile.TemporaryDirectory(prefix="tubelet-cores-") as workdir:
        train = args.encoding == "train"
        shards = args.shards or (
            None
            if args.core_rates and not args.gpu_decode
            else str(recommended_shards(Path(workdir), train_encoding=train))
        )
        per_core = (
            _parse_rates(args.core_rates) if args.core_rates else core_clips_per_s(shards, clips=args.clips)
        )
        if args.gpu_decode:
            decode = gpu_decode_rates(shards, clips=args.clips)
    size = json.loads(Path(args.from_bench).read_text())["size"] if args.from_bench else args.size
    figure = cores_figure(size, args.backbone, gpu, per_core, decode)
    print(json.dumps(as_dict(figure)) if args.json else format_figure(figure))
    return 0
