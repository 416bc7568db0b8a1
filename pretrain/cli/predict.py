"""`tubelet predict CKPT VIDEO...`: top-k classes of whole videos; with `--stream`, of sliding windows
over one long, live or growing source (one line per window, then a summary, also on Ctrl-C)."""

from __future__ import annotations

import argparse
import json
import math
import sys

from pretrain.errors import UserError

MIN_SECONDS = 0.001
"""Shortest --window / --stride: a millisecond (float seconds of a day-long stream still advance)."""


def register(subparsers: argparse._SubParsersAction) -> None:
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


def _predict(args: argparse.Namespace) -> int:
    for flag, value in (("--topk", args.topk), ("--clips", args.clips), ("--crops", args.crops)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value} must be >= 1")
    if args.stream:  # the light path: no training part imported
        return _run_stream(args)
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


def add_stream_options(predict: argparse.ArgumentParser) -> None:
    group = predict.add_argument_group("streaming (--stream): slide over one long video, URL or growing file")
    group.add_argument(
        "--stream", action="store_true", help="score sliding windows of one source as it decodes"
    )
    group.add_argument(
        "--window", type=float, help="window length in seconds (default: one training clip's span)"
    )
    group.add_argument("--stride", type=float, help="seconds between window starts (default: half a window)")
    group.add_argument(
        "--follow",
        type=float,
        default=0.0,
        metavar="S",
        help="a local file still being written: wait up to S seconds for it to grow at its end",
    )
    group.add_argument("--json", action="store_true", help="one JSON object per line")


def _run_stream(args: argparse.Namespace) -> int:
    from pretrain.evaluate.frame_source import FrameSource
    from pretrain.evaluate.inference import load_inference_model
    from pretrain.evaluate.predict_stream import StreamStats, stream_predictions

    if len(args.videos) != 1:
        raise UserError(f"--stream takes one source, got {len(args.videos)}")
    for name in ("window", "stride"):  # nan passes `<= 0`; 1e-300 never moves a window on
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= MIN_SECONDS):
            raise UserError(f"--{name} {value} must be a finite number of seconds >= {MIN_SECONDS}")
    loaded = load_inference_model(args.checkpoint)
    if loaded.kind != "classifier":
        raise UserError(f"{args.checkpoint} is a {loaded.kind} model; --stream needs a classifier")
    source = FrameSource(args.videos[0], loaded.spec.img_size, follow_s=args.follow)
    stats = StreamStats()
    try:
        for prediction in stream_predictions(loaded, source, stats, args.topk, args.window, args.stride):
            print(json.dumps(prediction.to_json()) if args.json else _format(prediction), flush=True)
    except KeyboardInterrupt:
        stats.end_reason = "interrupted"
    summary = stats.summary()
    print(json.dumps({"summary": summary}) if args.json else _format_summary(summary), flush=True)
    if summary["end"] != "end of input":
        print(f"tubelet: stream ended: {summary['end']}", file=sys.stderr)
    return 0


def _format(p) -> str:
    ranked = "  ".join(f"{name} {100 * prob:.1f}%" for name, prob in p.topk)
    return f"[{p.t0:8.2f} - {p.t1:8.2f} s] {ranked}  ({p.latency_ms:.1f} ms)"


def _format_summary(s: dict) -> str:
    return (
        f"{s['windows']} windows over {s['video_s']:.2f} s of video in {s['wall_s']:.2f} s: "
        f"realtime_factor {s['realtime_factor']}, window latency p50 {s['latency_p50_ms']} ms, "
        f"p95 {s['latency_p95_ms']} ms ({s['end']})"
    )
