"""TimeSformer and ViViT under DeepSpeed ZeRO-3 on two CPU ranks (gloo), launched by `tubelet
pretrain` itself: parameters read outside their module (fused qkv, patch weight, decoder head rows,
mask token) are registered, the run steps with finite losses, and its sharded checkpoint exports to
weights that rebuild the backbone."""

from __future__ import annotations

import json
import math

import pytest
from pretrain_runs import build_folder_shards, overrides, run_cli, series

from pretrain.weights import build_model, export_checkpoint, load_weights
from pretrain.weights.layout import find_checkpoint

pytestmark = pytest.mark.slow
STEPS = 3


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return build_folder_shards(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("backbone", ["timesformer", "vivit"])
def test_two_zero3_ranks_train_and_export(backbone, shards, tmp_path):
    done = run_cli(
        "pretrain",
        "tiny",
        *overrides(
            shards,
            tmp_path,
            "z3",
            "trainer.devices=2",
            "data.batch_size=2",
            "logging.wandb=disabled",
            f"trainer.max_steps={STEPS}",
            f"trainer.checkpoint_every_steps={STEPS}",
            "strategy.name=deepspeed",
            "strategy.zero_stage=3",
            f"model.backbone={backbone}",
        ),
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["step"] == STEPS and math.isfinite(summary["loss"])
    assert "ZeRO-3: parameters gathered with an enclosing module" in done.stderr
    assert "encoder.blocks.0.attn.qkv.weight" in done.stderr
    losses = series(tmp_path / "z3", "train/loss")
    assert sorted(losses) == list(range(STEPS)) and all(math.isfinite(v) for v in losses.values())
    checkpoint = find_checkpoint(tmp_path / "z3")
    assert checkpoint.meta["zero_stage"] == 3
    export_checkpoint(checkpoint.path, tmp_path / "export")
    state, model_config = load_weights(tmp_path / "export")
    assert model_config["backbone"] == backbone
    model = build_model(state, model_config)  # strict: every consolidated tensor has its place
    assert sum(p.numel() for p in model.parameters()) == sum(t.numel() for t in state.values())
