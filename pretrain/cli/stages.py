"""`tubelet pretrain RECIPE key=value ...`, `tubelet distill RECIPE distill.teacher=PATH ...` and
`tubelet export CKPT OUT`."""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    pretrain = subparsers.add_parser(
        "pretrain",
        help="masked-video pretraining (Lightning + DeepSpeed ZeRO)",
        description="Pretrain VideoMAE from shards. Example: tubelet pretrain tiny data.shards=shards/ "
        "trainer.devices=2 strategy.name=deepspeed strategy.zero_stage=2",
    )
    pretrain.add_argument("recipe", help="shipped recipe name (e.g. tiny, k400_vit_b) or a YAML path")
    pretrain.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    pretrain.set_defaults(handler=_pretrain)

    distill = subparsers.add_parser(
        "distill",
        help="train a small student from a frozen teacher (logits: VideoMAE V2; features: MVD)",
        description="Example: tubelet distill tiny data.shards=motion/ distill.teacher=runs/teacher/ "
        "finetune.init=export/ (distill.kind=features for MVD's masked feature distillation)",
    )
    distill.add_argument("recipe", help="shipped recipe (e.g. tiny, vit_s_from_b_k400) or a YAML path")
    distill.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    distill.set_defaults(handler=_distill)

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


def _pretrain(args: argparse.Namespace) -> int:
    from pretrain.config import load_config

    config = load_config(args.recipe, args.overrides, stage="pretrain")  # ConfigError → exit 2
    return run_and_report(config)


def _distill(args: argparse.Namespace) -> int:
    from pretrain.config import load_config

    config = load_config(args.recipe, args.overrides, stage="distill")  # ConfigError → exit 2
    return run_and_report(config)


def run_and_report(config) -> int:
    """Run the stage (user errors reach `pretrain.cli.main` as TubeletError) and print its summary."""
    config.check_before_run()  # before Lightning or Ray is even imported
    from pretrain.train.entry import run_stage

    if config.cluster.launcher == "ray":
        return _run_on_ray(config)
    result = run_stage(config)
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    if rank_zero_only.rank == 0:
        summary = {
            "run_dir": str(result.run_dir),
            "step": result.global_step,
            "last_checkpoint": str(result.last_checkpoint) if result.last_checkpoint else None,
            "stopped_by_signal": result.stopped_by_signal,
            "skipped_nonfinite": result.skipped_nonfinite,
            "loss": result.metrics.get("train/loss"),
        }
        print(json.dumps(summary), file=sys.stdout)
    return 0


def _run_on_ray(config) -> int:
    """`cluster.launcher=ray`: the same stage, run by Ray Train workers (pretrain.distributed)."""
    from pretrain.distributed.runner import run_with_ray

    result = run_with_ray(config)
    print(
        json.dumps(
            {
                "run_dir": str(result.run_dir),
                "step": result.global_step,
                "last_checkpoint": result.checkpoint_path,
                "storage_path": result.storage_path,
            }
        )
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    if args.format != "safetensors":
        from pretrain.cli.export_runtime import run_runtime_export

        return run_runtime_export(args)
    from pretrain.weights import export_checkpoint  # CheckpointError -> one line, exit 1 (cli.main)

    out = export_checkpoint(args.checkpoint, args.out)
    print(f"exported {args.checkpoint} -> {out}")
    return 0
