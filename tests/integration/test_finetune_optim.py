"""The fine-tuning optimizer: layer-wise lr decay per parameter group under warmup + cosine, and
no weight decay on norms, biases and tokens."""

from __future__ import annotations

import pytest

from pretrain.config import load_config
from pretrain.models import build_finetune_model
from pretrain.train.finetune_module import FinetuneModule


def test_layer_decay_scales_every_group_through_the_schedule():
    config = load_config(
        "finetune/tiny",
        ["optim.layer_decay=0.5", "optim.epochs=10", "optim.warmup_epochs=2"],
        stage="finetune",
    )
    model = build_finetune_model(config, num_classes=4)
    module = FinetuneModule(config, model, ["a", "b", "c", "d"], steps_per_epoch=5)
    setup = module.configure_optimizers()
    optimizer, scheduler = setup["optimizer"], setup["lr_scheduler"]["scheduler"]
    depth = model.spec.depth  # layers: 0 = embedding, 1..depth = blocks, depth + 1 = norm and head
    peak = config.lr
    for _ in range(10):  # to the end of warmup: every group at its own peak
        optimizer.step()
        scheduler.step()
    for group in optimizer.param_groups:
        layer = int(group["name"].split("_")[1])
        assert group["lr"] == pytest.approx(peak * 0.5 ** (depth + 1 - layer))
        assert group["weight_decay"] == (
            0.0 if group["name"].endswith("no_decay") else config.optim.weight_decay
        )
        if group["name"].endswith("no_decay"):
            assert all(
                name.endswith("bias") or "norm" in name or "_bias" in name for name in group["param_names"]
            )
    head = next(g for g in optimizer.param_groups if "head.weight" in g["param_names"])
    assert head["lr"] == pytest.approx(peak)
    for _ in range(40):  # cosine to the floor
        optimizer.step()
        scheduler.step()
    assert head["lr"] == pytest.approx(config.optim.min_lr, rel=1e-3)
