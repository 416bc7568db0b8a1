"""Helpers for the fine-tuning / evaluation / prediction tests: a small motion dataset in the
official UCF101 layout built into real shards, and a short real fine-tuning run on it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from pretrain.config import RunConfig, load_config
from pretrain.data.generated.motion_dataset import write_motion_dataset
from pretrain.data.shards import BuildOptions, build_shards
from pretrain.models import build_finetune_model
from pretrain.train.entry import StageResult, run_stage
from pretrain.train.finetune_init import initialise


class OneThread:
    """Two cores shared by many processes: one intra-op thread avoids oversubscription stalls."""

    def __enter__(self) -> None:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)


class InProcessRun(OneThread):
    """A stage run inside the test process, leaving nothing behind: Lightning and DeepSpeed set
    LOCAL_RANK, MASTER_PORT, ... in os.environ; a later `tubelet ... trainer.devices=2` child would
    inherit LOCAL_RANK, believe it is a launched rank and hang. (The 1-process group stays: DeepSpeed
    caches it.)"""

    def __enter__(self) -> None:
        super().__enter__()
        self.environ = dict(os.environ)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        os.environ.clear()
        os.environ.update(self.environ)


def motion_shards(
    root: Path, classes: Sequence[str], groups: Sequence[int], shard_size_mb: float = 0.05
) -> Path:
    """The motion dataset (one clip per class and group) built into several small shards."""
    write_motion_dataset(root / "raw", classes=classes, groups=groups)
    build_shards("ucf101", str(root / "raw"), str(root / "shards"), BuildOptions(shard_size_mb=shard_size_mb))
    return root / "shards"


def finetune_config(shards: Path, out: Path, name: str, *extra: str) -> RunConfig:
    return load_config(
        "finetune/tiny",
        [
            f"data.shards={shards}",
            f"trainer.output_dir={out}",
            f"trainer.run_name={name}",
            "logging.wandb=disabled",
            *extra,
        ],
        stage="finetune",
    )


def short_finetune(shards: Path, out: Path, name: str, *extra: str) -> StageResult:
    """A few real optimizer steps: enough for a checkpoint with trained weights and class names."""
    with InProcessRun():
        return run_stage(
            finetune_config(
                shards, out, name, "trainer.max_steps=3", "trainer.checkpoint_every_steps=3", *extra
            )
        )


def classifier_logits(init: str, seed: int = 7, **overrides: str) -> torch.Tensor:
    """Logits of the tiny fine-tuning classifier initialised from `init` (the same head every time)."""
    extra = [f"{k}={v}" for k, v in overrides.items()]
    config = load_config("finetune/tiny", [f"finetune.init={init}", *extra], stage="finetune")
    torch.manual_seed(seed)
    model = build_finetune_model(config, num_classes=4)
    initialise(model, config)
    with torch.no_grad():  # a full-scale head (the default starts near zero) so logits show differences
        model.head.weight.copy_(
            torch.randn(model.head.weight.shape, generator=torch.Generator().manual_seed(seed))
        )
        video = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0))
        return model.eval()(video)  # (2, 4)
