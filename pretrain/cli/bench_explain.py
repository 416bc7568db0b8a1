"""`tubelet bench explain`: every explanation method on every backbone, the same two checks."""

from __future__ import annotations

import argparse
import json


def register(benches: argparse._SubParsersAction) -> None:
    parser = benches.add_parser(
        "explain",
        help="box mass ratio and deletion AUC vs random for each explanation method x backbone",
        description="Trains a tiny classifier per backbone on salient-object clips (the class is the colour of "
        "a small moving square over clutter), then scores every method's maps on held-out clips: the "
        "share of the map's mass inside the square's box over the box's area share (1 = uniform), and "
        "the deletion-curve area, most salient tokens first, beside random orders (lower = faithful).",
    )
    parser.add_argument(
        "--backbones", default="vit,timesformer,vivit", help="comma-separated (default all three)"
    )
    parser.add_argument("--clips", type=int, default=9, help="held-out clips (default 9)")
    parser.add_argument("--steps", type=int, default=120, help="training steps of 24 clips (default 120)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import dataclasses

    from pretrain.bench.explain import render_table, run_explain_bench
    from pretrain.errors import UserError
    from pretrain.models.backbones import BACKBONES

    backbones = tuple(b.strip() for b in args.backbones.split(",") if b.strip())
    unknown = [b for b in backbones if b not in BACKBONES]
    if unknown or not backbones:
        raise UserError(f"--backbones {args.backbones!r}: choose from {', '.join(BACKBONES)}")
    if args.clips < 1 or args.steps < 1:
        raise UserError("--clips and --steps must be >= 1")
    figures, accuracies = run_explain_bench(backbones, clips=args.clips, steps=args.steps)
    if args.json:
        print(json.dumps({"figures": [dataclasses.asdict(f) for f in figures], "accuracy": accuracies}))
    else:
        print(render_table(figures, accuracies))
    return 0
