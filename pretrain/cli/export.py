"""`tubelet export CKPT OUT [--format safetensors|onnx|torchscript]`: a checkpoint as weights for
fine-tuning and `from_pretrained`, or as a classifier for other runtimes."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    export = subparsers.add_parser(
        "export",
        help="consolidate a training checkpoint (any strategy, ZeRO-3 shards too) into "
        "model.safetensors + config.json",
    )
    export.add_argument(
        "checkpoint", help="checkpoint folder (RUN/checkpoints/step-N or last) or a run folder"
    )
    export.add_argument("out", help="output folder")
    export.add_argument(
        "--format",
        choices=("safetensors", "onnx", "torchscript"),
        default="safetensors",
        help="onnx / torchscript: a classifier for other runtimes (dynamic batch, parity-checked)",
    )
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    if args.format != "safetensors":
        return _runtime_export(args)
    from pretrain.weights import export_checkpoint  # CheckpointError -> one line, exit 1 (cli.main)

    out = export_checkpoint(args.checkpoint, args.out)
    print(f"exported {args.checkpoint} -> {out}")
    return 0


def _runtime_export(args: argparse.Namespace) -> int:
    from pretrain.evaluate.runtime_export import export_runtime

    result = export_runtime(args.checkpoint, args.out, args.format)
    print(
        json.dumps(
            {
                "exported": str(result.path),
                "format": result.format,
                "max_abs_diff": result.max_abs_diff,
                **({"note": result.note} if result.note else {}),
            }
        )
    )
    return 0
