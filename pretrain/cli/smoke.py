"""`tubelet smoke [--device auto|cpu|cuda] [--backbone NAME] [--out DIR] [--small]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "smoke",
        help="the whole stack on one device in minutes; every step asserts its outcome (smoke.json)",
        description="Generated videos → shards → pretrain (DeepSpeed ZeRO-2; bf16 on CUDA) → checkpoint → resume "
        "(equal to the uninterrupted run) → export → fine-tune → multi-view evaluate → predict. "
        "Writes OUT/smoke.json; exits 1 naming the first failed check.",
    )
    parser.add_argument(
        "--device",
        default="auto",
        choices=("auto", "cpu", "cuda"),
        help="auto: cuda when a GPU is visible (default)",
    )
    parser.add_argument("--backbone", default="vit", help="model.backbone of every stage (default vit)")
    parser.add_argument("--out", default="smoke", help="output folder (default ./smoke)")
    parser.add_argument("--small", action="store_true", help="the CI-sized setting (fewer videos and steps)")
    parser.set_defaults(handler=_smoke)


def _smoke(args: argparse.Namespace) -> int:
    from pretrain.smoke.plan import plan_for
    from pretrain.smoke.run import run_smoke

    plan = plan_for(args.device, args.backbone, small=args.small)  # ConfigError → exit 2
    report = run_smoke(Path(args.out), plan)  # SmokeFailed → exit 1, naming the check
    print(
        json.dumps(
            {"passed": report.passed, "checks": len(report.checks), "figures": report.figures}, indent=2
        )
    )
    print(f"smoke: all {len(report.checks)} checks passed; {report.out / 'smoke.json'}")
    return 0
