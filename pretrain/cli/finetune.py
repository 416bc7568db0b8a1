"""`tubelet finetune`, `tubelet evaluate` and `tubelet predict`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from pretrain.cli.predict_stream import add_stream_options, run_stream
from pretrain.errors import UserError

EVALUATE_KEYS = ("ckpt", "splits")


def register(subparsers: argparse._SubParsersAction) -> None:
    finetune = subparsers.add_parser(
        "finetune",
        help="fine-tune (or linear-probe) a classifier on labeled shards, then test it",
        description="Fine-tune from any weights. Example: tubelet finetune ucf101_vit_b data.shards=ucf101/ "
        "finetune.init=export/ finetune.split=1 (finetune.mode=linear_probe for a linear probe)",
    )
    finetune.add_argument("recipe", help="shipped recipe (e.g. tiny, ucf101_vit_b) or a YAML path")
    finetune.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    finetune.set_defaults(handler=_finetune)

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

    predict = subparsers.add_parser("predict", help="top-k classes of video files with a fine-tuned model")
    predict.add_argument(
        "checkpoint", help="fine-tuning checkpoint (folder, last, run folder) or classifier export"
    )
    predict.add_argument("videos", nargs="+", metavar="VIDEO", help="video files (any container PyAV reads)")
    predict.add_argument("--topk", type=int, default=5, help="classes shown per video (default 5)")
    predict.add_argument("--clips", type=int, help="temporal views (default: the run's data.test_clips)")
    predict.add_argument("--crops", type=int, help="spatial views (default: the run's data.test_crops)")
    add_stream_options(predict)
    predict.set_defaults(handler=_predict)


def _finetune(args: argparse.Namespace) -> int:
    from pretrain.cli.stages import run_and_report
    from pretrain.config import load_config

    config = load_config(args.recipe, args.overrides, stage="finetune")  # ConfigError → exit 2
    return run_and_report(config)


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


def _predict(args: argparse.Namespace) -> int:
    for flag, value in (("--topk", args.topk), ("--clips", args.clips), ("--crops", args.crops)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value} must be >= 1")
    if args.stream:  # the light path: no training part imported
        return run_stream(args)
    from pretrain.evaluate.predict import predict

    report = predict(args.checkpoint, args.videos, topk=args.topk, clips=args.clips, crops=args.crops)
    for prediction in report.predictions:
        print(_format_prediction(prediction.path, prediction.topk, prediction.error))
    answered = len(report.predictions) - len(report.failed)
    print(
        f"{report.views} views of {answered} video(s) in {report.seconds:.2f} s: "
        f"{report.clips_per_s:.1f} views/s"
    )
    return 1 if report.failed else 0


def _format_prediction(path: str, topk: list[tuple[str, float]], error: str | None) -> str:
    if error:
        return f"{path}: skipped: {error}"
    ranked = "  ".join(f"{name} {100 * prob:.1f}%" for name, prob in topk)
    return f"{path}: {ranked}"
