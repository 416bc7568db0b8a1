"""A new backbone is one module plus one registration line (the README's "a backbone" recipe):
`toy_backbone.SLICES` registered, it pretrains through the real stage runner, its checkpoint exports
and rebuilds, its learned tables resize to another clip length, and the config refuses it a random mask."""

from __future__ import annotations

import math

import pytest
import torch
from finetune_runs import InProcessRun, motion_shards
from toy_backbone import SLICES, SliceEncoder

from pretrain.config import ConfigError, load_config
from pretrain.models import arch_spec
from pretrain.models.backbones import BACKBONES
from pretrain.models.positions import resize_learned_tables
from pretrain.train.entry import run_stage
from pretrain.weights import build_model, export_checkpoint, load_weights

STEPS = 2


@pytest.fixture
def slices_registered(monkeypatch):
    monkeypatch.setitem(BACKBONES, "slices", SLICES)  # the one registration line (undone after the test)


def tiny(shards, root, *extra):
    return load_config(
        "pretrain/tiny",
        [
            f"data.shards={shards}",
            f"trainer.max_steps={STEPS}",
            f"trainer.checkpoint_every_steps={STEPS}",
            f"trainer.output_dir={root}",
            "trainer.run_name=slices",
            "logging.wandb=disabled",
            "logging.every_steps=1",
            "model.backbone=slices",
            *extra,
        ],
        stage="pretrain",
    )


def test_a_registered_backbone_pretrains_exports_and_rebuilds(slices_registered, tmp_path):
    shards = motion_shards(tmp_path / "motion", ("MoveUpSlow", "MoveDownSlow"), groups=(1, 8))
    config = tiny(shards, tmp_path / "runs")
    with InProcessRun():
        result = run_stage(config)
    assert result.global_step == STEPS
    assert result.last_checkpoint is not None and result.last_checkpoint.name == f"step-{STEPS:08d}"
    assert math.isfinite(result.metrics["train/loss"])
    export_checkpoint(result.last_checkpoint, tmp_path / "export")
    state, model_config = load_weights(tmp_path / "export")
    model = build_model(state, model_config)
    assert type(model.encoder) is SliceEncoder
    assert model.spec.backbone == "slices"
    torch.testing.assert_close(model.encoder.time_embed, state["encoder.time_embed"], rtol=0, atol=0)


def test_its_learned_tables_resize_to_another_clip_length(slices_registered, tmp_path):
    config = tiny(tmp_path, tmp_path)
    source = arch_spec(config.model)
    target = arch_spec(tiny(tmp_path, tmp_path, f"model.num_frames={2 * config.model.num_frames}").model)
    state = {"encoder.time_embed": torch.randn(1, source.grid[0], source.dim)}
    assert resize_learned_tables(state, source, target) == [
        f"encoder.time_embed {source.grid[0]} -> {target.grid[0]}"
    ]
    assert state["encoder.time_embed"].shape == (1, target.grid[0], source.dim)


def test_the_config_lists_it_and_refuses_it_a_random_mask(slices_registered, tmp_path):
    with pytest.raises(ConfigError, match="mask.kind='random' cannot train model.backbone=slices"):
        tiny(tmp_path, tmp_path, "mask.kind=random")
    with pytest.raises(ConfigError, match=r"choose one of \['vit', 'timesformer', 'vivit', 'slices'\]"):
        tiny(tmp_path, tmp_path, "model.backbone=mixer")
