"""The pieces of the pretraining stage on their own: AdamW groups, the lr schedule, the strategy
and DeepSpeed config built from a run config, and checkpoint validity checks."""

from __future__ import annotations

import json
import math

import pytest
import torch

from pretrain.config import ConfigError, load_config
from pretrain.models import build_pretraining_model
from pretrain.runtime.placement import resolve_placement
from pretrain.train.optim import Schedule, param_groups, schedule_for
from pretrain.train.strategy import (
    CPUCapableDeepSpeedStrategy,
    SkippableDeepSpeedPrecision,
    build_strategy,
    deepspeed_config,
    validate_world_size,
)
from pretrain.weights import layout as ckpt


def _config(*overrides: str):
    return load_config("tiny", ["data.shards=unused", *overrides], stage="pretrain")


def test_no_weight_decay_on_norms_biases_and_tokens():
    model = build_pretraining_model(_config().model)
    decay, no_decay = param_groups(model.named_parameters(), 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert "mask_token" in no_decay["names"]
    assert all(name.endswith("bias") or "norm" in name or name == "mask_token" for name in no_decay["names"])
    assert all(p.ndim >= 2 for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_lr_scales_with_global_batch_and_warms_up_then_decays():
    config = _config(
        "trainer.devices=2",
        "optim.accumulate_grad_batches=4",
        "optim.base_lr=1e-3",
        "optim.min_lr=1e-5",
        "optim.epochs=10",
        "optim.warmup_epochs=2",
    )
    assert config.lr == pytest.approx(1e-3 * (4 * 2 * 4) / 256)
    schedule = schedule_for(config, steps_per_epoch=5)
    assert (schedule.warmup_steps, schedule.total_steps) == (10, 50)
    lrs = [schedule.lr_at(step) for step in range(51)]
    assert lrs[0] == pytest.approx(config.lr / 10) and lrs[9] == pytest.approx(config.lr)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # cosine never rises
    assert lrs[30] == pytest.approx(1e-5 + (config.lr - 1e-5) * 0.5)  # halfway through the decay
    assert lrs[50] == pytest.approx(1e-5)


def test_lambda_scheduler_reproduces_the_schedule():
    schedule = Schedule(peak_lr=0.01, min_lr=0.001, warmup_steps=3, total_steps=10)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    scheduler = schedule.lambda_scheduler(optimizer)
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([schedule.lr_at(step) for step in range(10)])


def test_max_steps_shortens_the_run_keeping_the_warmup_fraction():
    schedule = schedule_for(
        _config("trainer.max_steps=100", "optim.epochs=20", "optim.warmup_epochs=2"), 1000
    )
    assert (schedule.warmup_steps, schedule.total_steps) == (10, 100)


def test_strategies_built_from_the_config():
    single = _config()
    assert build_strategy(single, resolve_placement(single)) == "auto"
    zero3 = _config(
        "strategy.name=deepspeed",
        "strategy.zero_stage=3",
        "strategy.offload_params=cpu",
        "strategy.offload_optimizer=cpu",
        "trainer.devices=2",
    )
    placement = resolve_placement(zero3)
    strategy = build_strategy(zero3, placement)
    assert isinstance(strategy, CPUCapableDeepSpeedStrategy)
    assert isinstance(strategy.precision_plugin, SkippableDeepSpeedPrecision)
    assert strategy._process_group_backend == "gloo"
    ds = deepspeed_config(zero3, placement)
    assert ds["zero_optimization"]["stage"] == 3
    assert ds["zero_optimization"]["offload_param"] == {"device": "cpu", "pin_memory": False}
    assert ds["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": False}
    assert ds["train_micro_batch_size_per_gpu"] == 4 and "bf16" not in ds


def test_nvme_offload_carries_its_path():
    config = _config(
        "strategy.name=deepspeed",
        "strategy.zero_stage=2",
        "strategy.offload_optimizer=nvme",
        "strategy.nvme_path=/local/nvme",
    )
    section = deepspeed_config(config, resolve_placement(config))["zero_optimization"]["offload_optimizer"]
    assert section == {"device": "nvme", "pin_memory": False, "nvme_path": "/local/nvme"}


def test_world_size_and_accelerator_checked_up_front():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only machine's messages")
    with pytest.raises(ConfigError, match="trainer.accelerator='gpu' but CUDA is not available"):
        resolve_placement(_config("trainer.accelerator=gpu", "trainer.precision=auto"))
    config = _config("trainer.devices=4", "trainer.num_nodes=2")
    placement = resolve_placement(config)
    with pytest.raises(
        ConfigError,
        match=r"trainer.devices=4 GPU processes per node, but only 2 GPU\(s\) "
        r"are visible; world size = .* = 4 × 2 = 8",
    ):
        validate_world_size(config, placement.__class__("gpu", "bf16-mixed", 4, 2), visible_gpus=2)


def test_a_checkpoint_with_a_truncated_file_is_not_valid(tmp_path):
    run = tmp_path / "run"
    for step in (5, 10):
        folder = run / "checkpoints" / ckpt.step_dir_name(step)
        (folder / "state").mkdir(parents=True)
        (folder / "state" / "shard.pt").write_bytes(b"x" * 100)
        files = {"state/shard.pt": 100}
        (folder / "meta.json").write_text(json.dumps({"step": step, "deepspeed": True, "files": files}))
    newest = run / "checkpoints" / "step-00000010" / "state" / "shard.pt"
    newest.write_bytes(b"x" * 60)  # a shard cut short
    assert "state/shard.pt has 60 bytes, expected 100" in ckpt.checkpoint_problem(newest.parent.parent)
    found = ckpt.latest_valid_checkpoint(run)
    assert found.step == 5 and found.state_path == run / "checkpoints" / "step-00000005" / "state"
    with pytest.raises(ckpt.CheckpointError, match="not a usable checkpoint: state/shard.pt has 60 bytes"):
        ckpt.read_checkpoint(newest.parent.parent)
    assert ckpt.resolve_resume("none", run) is None and math.isfinite(found.step)


def test_zero3_finds_parameters_read_outside_their_module():
    from dataclasses import dataclass

    from pretrain.train.zero3 import untracked_parameters

    @dataclass
    class Out:
        value: torch.Tensor

    class Reads(torch.nn.Module):  # reads its child's weight through F.linear, returns a tensor
        def __init__(self):
            super().__init__()
            self.inner = torch.nn.Linear(4, 4)

        def forward(self, x):
            return torch.nn.functional.linear(x, self.inner.weight.flip(0))

    class Model(torch.nn.Module):  # a direct token and a dataclass output
        def __init__(self):
            super().__init__()
            self.token = torch.nn.Parameter(torch.zeros(4))
            self.reads = Reads()
            self.called = torch.nn.Linear(4, 4)

        def forward(self, x):
            return Out(self.called(self.reads(x)) + self.token)

    model = Model()
    found = {name: holder for name, holder, _ in untracked_parameters(model, lambda: model(torch.ones(2, 4)))}
    assert found == {"token": "", "reads.inner.weight": "reads", "reads.inner.bias": "reads"}
