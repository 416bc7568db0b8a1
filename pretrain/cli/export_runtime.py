"""`tubelet export CKPT OUT --format onnx|torchscript` (declared with `export` in `cli/stages.py`)."""

from __future__ import annotations

import argparse
import json


def run_runtime_export(args: argparse.Namespace) -> int:
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
