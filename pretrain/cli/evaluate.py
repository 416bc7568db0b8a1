"""`tubelet evaluate RECIPE ckpt=... splits=1,2,3`: multi-view test of fine-tuned checkpoints."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

EVALUATE_KEYS = ("ckpt", "splits")


def register(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="multi-view test of fine-tuned checkpoints: split 1 and the 3-split mean",
        description="Example: tubelet evaluate ucf101_vit_b data.shards=ucf101/ "
        "ckpt=runs/ucf_s{split}/checkpoints/last splits=1,2,3",
    )
    evaluate.add_argument("recipe", help="recipe giving data.shards, views and devices")
    evaluate.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="ckpt=PATH (with {split}, or one per split comma-separated), splits=1,2,3, and config overrides",
    )
    evaluate.add_argument(
        "--out",
        help="output folder (default: beside the checkpoint's run, RUN-evaluate; or trainer.run_name)",
    )
    evaluate.add_argument(
        "--shuffle-frames",
        action="store_true",
        help="shuffle each clip's frames: how much does the model rely on time?",
    )
    evaluate.set_defaults(handler=_evaluate)


def split_evaluate_args(overrides: Sequence[str]) -> tuple[str, list[int], list[str]]:
    """Pull `ckpt=` and `splits=` out of the overrides; the rest are config overrides."""
    from pretrain.config import ConfigError

    values = {key: None for key in EVALUATE_KEYS}
    rest = []
    for item in overrides:
        key, _, value = item.partition("=")
        if key in values:
            values[key] = value
        else:
            rest.append(item)
    if not values["ckpt"]:
        raise ConfigError("ckpt=PATH is required (a checkpoint per split: use {split} in the path)")
    try:
        splits = [int(s) for s in (values["splits"] or "1").split(",") if s]
    except ValueError:
        raise ConfigError(f"splits={values['splits']!r} must be a comma-separated list of 1, 2, 3") from None
    if not splits or any(s not in (1, 2, 3) for s in splits):
        raise ConfigError(f"splits={values['splits']!r} must be a comma-separated list of 1, 2, 3")
    return values["ckpt"], splits, rest


def _evaluate(args: argparse.Namespace) -> int:
    from pretrain.config import load_config
    from pretrain.evaluate.run import evaluate

    ckpt, splits, overrides = split_evaluate_args(args.overrides)
    config = load_config(args.recipe, overrides, stage="finetune")
    config.data.require_shards()
    results = evaluate(config, ckpt, splits, out_dir=args.out, shuffle_frames=args.shuffle_frames)
    if "results_md" in results.files:  # rank zero
        print(results.files["results_md"].read_text())
        print(json.dumps({name: str(path) for name, path in results.files.items()}))
    return 0
