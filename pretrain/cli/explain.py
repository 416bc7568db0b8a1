"""`tubelet explain CKPT VIDEO`: space-time saliency of a decision (or reconstruction error)."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "explain",
        help="where in space and time a model looks: saliency.json, .png and .mp4",
        description="Explain a classifier's decision on one video (attention rollout or Grad-CAM on the last "
        "block's tokens, or occlusion for an ONNX/int8 export), or show a pretraining checkpoint's per-token reconstruction error. "
        "Example: tubelet explain runs/ucf/export clip.avi --method gradient --out explain/",
    )
    parser.add_argument(
        "checkpoint", help="classifier or pretraining checkpoint (export, HF folder, stage checkpoint)"
    )
    parser.add_argument("video", help="video file (any container PyAV reads)")
    parser.add_argument("--class", dest="class_name", help="class to explain (default: the top class)")
    parser.add_argument(
        "--method",
        choices=("rollout", "gradient", "occlusion"),
        default=None,
        help="attention rollout, Grad-CAM, or occlusion (gradient-free: the only one for an ONNX/int8 "
        "export, and its default); default gradient; ignored for pretraining checkpoints",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace) -> int:
    from pretrain.evaluate.explain import explain

    files = explain(args.checkpoint, args.video, args.out, method=args.method, class_name=args.class_name)
    summary = json.loads(files["json"].read_text())
    print(
        json.dumps(
            {
                "class": summary["class"],
                "prob": summary["prob"],
                "method": summary["method"],
                **{kind: str(path) for kind, path in files.items()},
            }
        )
    )
    return 0
