"""`tubelet export CKPT OUT [--format safetensors|onnx|torchscript] [--quantize int8]`: a checkpoint as
weights for fine-tuning and `from_pretrained`, or as a classifier for other runtimes (one JSON line;
the ONNX exporter's chatter goes to OUT/export.log)."""

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
    export.add_argument(
        "--quantize",
        choices=("int8",),
        help="with --format onnx: also write model.int8.onnx (onnxruntime dynamic int8 of the linear "
        "layers, for CPU inference; predict, --stream, explain and bench infer take the folder)",
    )
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    if args.format != "safetensors" or args.quantize:
        return _runtime_export(args)
    from pretrain.weights import export_checkpoint  # CheckpointError -> one line, exit 1 (cli.main)

    out = export_checkpoint(args.checkpoint, args.out)
    print(f"exported {args.checkpoint} -> {out}")
    return 0


def _runtime_export(args: argparse.Namespace) -> int:
    from pretrain.evaluate.runtime_export import export_runtime

    result = export_runtime(args.checkpoint, args.out, args.format, quantize=args.quantize)
    extra = {"quantize": result.quantization, "top1_agreement": result.top1_agreement}
    print(
        json.dumps(
            {
                "exported": str(result.path),
                "format": result.format,
                "max_abs_diff": result.max_abs_diff,
                **({k: v for k, v in extra.items() if v is not None}),
                **({"log": str(result.log_file)} if result.log_file else {}),
            }
        )
    )
    return 0
