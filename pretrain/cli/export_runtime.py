"""`tubelet export CKPT OUT --format onnx|torchscript [--quantize int8]` (declared with `export` in
`cli/stages.py`): one JSON line; the exporter's chatter is in OUT/export.log."""

from __future__ import annotations

import argparse
import json


def run_runtime_export(args: argparse.Namespace) -> int:
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
