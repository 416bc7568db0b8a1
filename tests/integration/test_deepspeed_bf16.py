"""DeepSpeed's bf16 engine (what `strategy.name=deepspeed` + `bf16-mixed` runs on a GPU) holds bf16
parameters and runs no autocast: clips made float on the device, and buffers the model reads, must
follow. The engine does the same on CPU, so this runs it here: the stages refuse bf16 on CPU for
users, so the test places the run itself (the placement is the only thing patched)."""

from __future__ import annotations

import math

import pytest

from pretrain.config import load_config
from pretrain.runtime.placement import Placement
from pretrain.train.entry import run_stage

BF16_ON_CPU = Placement("cpu", "bf16-mixed", 1, 1)
ZERO2 = ["strategy.name=deepspeed", "strategy.zero_stage=2"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    from pretrain.data.generated.motion_dataset import write_motion_dataset
    from pretrain.data.shards import BuildOptions, build_shards

    root = tmp_path_factory.mktemp("motion")
    write_motion_dataset(root / "raw", groups=(1, 8, 9), num_frames=20)
    build_shards("ucf101", str(root / "raw"), str(root / "shards"), BuildOptions(shard_size_mb=1))
    return root / "shards"


@pytest.fixture
def bf16_on_cpu(monkeypatch):
    """The placement bf16-mixed on CPU, wherever the stage runner reads it from."""
    import importlib

    for name in ("pretrain.train.pretrain_stage", "pretrain.train.finetune_stage", "pretrain.train.stage"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "resolve_placement"):
            monkeypatch.setattr(module, "resolve_placement", lambda config: BF16_ON_CPU)


def _overrides(shards, tmp_path, name: str) -> list[str]:
    return [
        f"data.shards={shards}",
        f"trainer.output_dir={tmp_path}",
        f"trainer.run_name={name}",
        "logging.wandb=disabled",
        "logging.every_steps=1",
        "trainer.max_steps=2",
        "trainer.checkpoint_every_steps=2",
        *ZERO2,
    ]


@pytest.mark.slow
def test_zero2_bf16_pretraining_steps_and_reconstructs(shards, tmp_path, bf16_on_cpu):
    result = run_stage(
        load_config(
            "pretrain/tiny",
            _overrides(shards, tmp_path, "pre") + ["data.split=train", "logging.recon_every_steps=1"],
        )
    )
    assert result.global_step == 2 and math.isfinite(result.metrics["train/loss"])
    assert list((result.run_dir / "reconstructions").glob("*.png"))


@pytest.mark.slow
def test_zero2_bf16_finetuning_steps_with_mixup(shards, tmp_path, bf16_on_cpu):
    result = run_stage(
        load_config("finetune/tiny", _overrides(shards, tmp_path, "ft") + ["finetune.mixup=0.8"])
    )
    assert result.global_step == 2 and math.isfinite(result.metrics["train/loss"])
    assert 0.0 <= result.metrics["test/top1"] <= 1.0
