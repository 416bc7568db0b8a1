"""`tubelet pretrain RECIPE key=value ...`, `tubelet finetune RECIPE key=value ...` and
`tubelet distill RECIPE distill.teacher=PATH ...`: run a training stage."""

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

    finetune = subparsers.add_parser(
        "finetune",
        help="fine-tune (or linear-probe) a classifier on labeled shards, then test it",
        description="Fine-tune from any weights. Example: tubelet finetune ucf101_vit_b data.shards=ucf101/ "
        "finetune.init=export/ finetune.split=1 (finetune.mode=linear_probe for a linear probe)",
    )
    finetune.add_argument("recipe", help="shipped recipe (e.g. tiny, ucf101_vit_b) or a YAML path")
    finetune.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    finetune.set_defaults(handler=_finetune)

    distill = subparsers.add_parser(
        "distill",
        help="train a small student from a frozen teacher (logits: VideoMAE V2; features: MVD)",
        description="Example: tubelet distill tiny data.shards=motion/ distill.teacher=runs/teacher/ "
        "finetune.init=export/ (distill.kind=features for MVD's masked feature distillation)",
    )
    distill.add_argument("recipe", help="shipped recipe (e.g. tiny, vit_s_from_b_k400) or a YAML path")
    distill.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    distill.set_defaults(handler=_distill)


def _pretrain(args: argparse.Namespace) -> int:
    from pretrain.config import load_config

    config = load_config(args.recipe, args.overrides, stage="pretrain")  # ConfigError → exit 2
    return run_and_report(config)


def _finetune(args: argparse.Namespace) -> int:
    from pretrain.config import load_config

    config = load_config(args.recipe, args.overrides, stage="finetune")  # ConfigError → exit 2
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
