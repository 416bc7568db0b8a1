"""`tubelet quickstart [--out DIR] [--small] [--seeds 0,1]`: the whole path, no downloads."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pretrain.models.backbones import BACKBONES, DEFAULT_BACKBONE


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="synthetic videos → shards → pretrain → fine-tune (pretrained vs scratch) → results",
        description="Runs the whole Tubelet path on this machine with synthetic data (GPU when present).",
    )
    parser.add_argument("--out", default="quickstart", help="output folder (default: ./quickstart)")
    parser.add_argument("--small", action="store_true", help="the CI-sized setting (about a minute)")
    parser.add_argument("--seeds", default=None, help="fine-tuning seeds, comma-separated (default 0,1,2)")
    parser.add_argument(
        "--backbone",
        choices=tuple(BACKBONES),
        default=DEFAULT_BACKBONE,
        help="encoder of every stage (default vit, VideoMAE's joint attention)",
    )
    parser.add_argument(
        "--train-encoding",
        action="store_true",
        help="pretrain on unlabeled shards built with --train-encoding (labeled shards stay whole-rate)",
    )
    parser.add_argument(
        "--distill",
        action="store_true",
        help="instead: a size-s teacher, the tiny student distilled from it and fine-tuned without it, "
        "one table of test top-1 and batch-1 CPU latency (tens of CPU-minutes; --seeds for students)",
    )
    parser.set_defaults(handler=_quickstart)


def parse_seeds(text: str) -> tuple[int, ...]:
    from pretrain.errors import UserError

    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        seeds = ()
    if not seeds:
        raise UserError(f"--seeds {text!r} must be comma-separated integers, e.g. 0,1,2")
    return seeds


def _quickstart(args: argparse.Namespace) -> int:
    if args.distill:
        return _distill_quickstart(args)
    from pretrain.quickstart import QuickstartPlan, run_quickstart
    from pretrain.quickstart.report import wandb_runs, wandb_sync_glob

    plan = QuickstartPlan.small() if args.small else QuickstartPlan()
    if args.seeds:
        plan = dataclasses.replace(plan, seeds=parse_seeds(args.seeds))
    plan = dataclasses.replace(plan, backbone=args.backbone, train_encoding=args.train_encoding)
    result = run_quickstart(
        Path(args.out), plan, on_stage=lambda message: print(f"==> {message}", flush=True)
    )
    print(result.files["results_md"].read_text())
    for name, path in sorted(result.files.items()):
        print(f"{name:>15}: {path}")
    runs = wandb_runs(result)
    if runs:
        print(f"offline W&B runs: {len(runs)} (upload all with `wandb sync {wandb_sync_glob(result)}`)")
    return 0


def _distill_quickstart(args: argparse.Namespace) -> int:
    from pretrain.quickstart import QuickstartPlan
    from pretrain.quickstart.distill import DistillPlan, run_distill_quickstart

    quick = QuickstartPlan.small() if args.small else QuickstartPlan()
    plan = DistillPlan(seeds=parse_seeds(args.seeds)) if args.seeds else DistillPlan()
    result = run_distill_quickstart(
        Path(args.out), quick, plan, on_stage=lambda m: print(f"==> {m}", flush=True)
    )
    print(result.files["distill_md"].read_text())
    return 0
