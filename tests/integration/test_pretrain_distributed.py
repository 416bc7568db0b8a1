"""Two CPU processes launched by `tubelet pretrain` itself (Lightning re-runs the command per rank):
DDP, DeepSpeed ZeRO-2 and ZeRO-3 over gloo learn, write sharded checkpoints in the expected
layout, resume onto the same trajectory, a ZeRO-3 checkpoint exports to weights that load, and
non-finite losses skip steps on every rank together, then stop with finite weights saved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pretrain_runs import build_folder_shards, overrides, run_cli, series

from pretrain.config import load_config
from pretrain.masking import batch_masks
from pretrain.models import build_pretraining_model
from pretrain.weights import build_model, load_weights
from pretrain.weights import layout as ckpt

pytestmark = pytest.mark.slow

STEPS, SAVE_EVERY = 12, 6
TWO_RANKS = (
    "trainer.devices=2",
    "data.batch_size=2",
    "logging.wandb=disabled",
    f"trainer.max_steps={STEPS}",
    f"trainer.checkpoint_every_steps={SAVE_EVERY}",
)
STRATEGIES = {
    "ddp": ("strategy.name=ddp",),
    "zero2": ("strategy.name=deepspeed", "strategy.zero_stage=2"),
    "zero3": ("strategy.name=deepspeed", "strategy.zero_stage=3"),
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return build_folder_shards(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


def _train(shards: Path, runs: Path, name: str, *extra: str) -> Path:
    done = run_cli("pretrain", "tiny", *overrides(shards, runs, name, *TWO_RANKS, *extra), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["step"] == STEPS
    return runs / name


def _assert_learns(run_dir: Path) -> None:
    losses = series(run_dir, "train/loss")
    assert sorted(losses) == list(range(STEPS))
    first, last = (
        np.mean([losses[s] for s in range(4)]),
        np.mean([losses[s] for s in range(STEPS - 4, STEPS)]),
    )
    assert last < 0.9 * first, (first, last)


def _state_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("strategy", ["ddp", "zero2", "zero3"])
def test_two_processes_learn_and_write_checkpoints(shards, runs, strategy):
    run_dir = _train(shards, runs, strategy, *STRATEGIES[strategy])
    _assert_learns(run_dir)
    assert [p.name for p in ckpt.list_checkpoints(run_dir)] == ["step-00000012", "step-00000006"]
    folder = run_dir / "checkpoints" / "step-00000012"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["world_size"] == 2 and meta["reason"] in ("periodic", "last")
    if strategy == "ddp":
        assert _state_files(folder) == ["config.yaml", "meta.json", "state.ckpt"]
        return
    expected = {"state/latest", "state/zero_to_fp32.py"} | {
        f"state/checkpoint/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" for rank in (0, 1)
    }
    if strategy == "zero3":  # every rank holds its own shard of the parameters
        expected |= {f"state/checkpoint/zero_pp_rank_{rank}_mp_rank_00_model_states.pt" for rank in (0, 1)}
    else:
        expected |= {"state/checkpoint/mp_rank_00_model_states.pt"}
    assert expected <= set(_state_files(folder)), _state_files(folder)
    assert meta["deepspeed"] is True and meta["zero_stage"] == int(strategy[-1])


def test_zero2_resume_follows_the_uninterrupted_trajectory(shards, runs):
    reference = runs / "zero2"
    if not reference.exists():
        pytest.skip("needs the zero2 run of test_two_processes_learn_and_write_checkpoints")
    halfway = reference / "checkpoints" / "step-00000006"
    resumed = _train(
        shards,
        runs,
        "zero2-resumed",
        *STRATEGIES["zero2"],
        f"trainer.resume={halfway}",
        "logging.recon_every_steps=0",
    )
    expected, got = series(reference, "train/loss"), series(resumed, "train/loss")
    assert sorted(got) == list(range(SAVE_EVERY, STEPS))
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step


def test_zero3_checkpoint_exports_and_loads(runs, tmp_path):
    source = runs / "zero3" / "checkpoints" / "last"
    if not source.exists():
        pytest.skip("needs the zero3 run of test_two_processes_learn_and_write_checkpoints")
    done = run_cli("export", str(source), str(tmp_path / "export"))
    assert done.returncode == 0, done.stderr[-3000:]
    state, model_config = load_weights(tmp_path / "export")
    model = build_model(state, model_config)  # strict: every tensor present with its full shape
    assert model.encoder.patch_embed.proj.weight.shape == (64, 3, 2, 16, 16)
    torch.manual_seed(0)
    video = torch.randn(2, 3, 8, 64, 64)  # (B, C, T, H, W)
    mask, _ = batch_masks(2, (4, 4, 4), 0.75)
    with torch.no_grad():
        assert torch.isfinite(model(video, mask).loss)
    torch.manual_seed(0)  # the run's seed: the weights it started from
    initial = build_pretraining_model(load_config(str(runs / "zero3" / "config.yaml")).model).state_dict()
    assert initial.keys() == state.keys()
    assert all(not torch.equal(initial[k], state[k]) for k in state)  # trained weights from both shards


def test_nonfinite_losses_stop_two_zero3_ranks_with_finite_weights_saved(shards, runs, tmp_path):
    done = run_cli(
        "pretrain",
        "tiny",
        *overrides(
            shards,
            runs,
            "diverges",
            *TWO_RANKS,
            *STRATEGIES["zero3"],
            "optim.base_lr=1e12",
            "optim.clip_grad=null",
            "optim.warmup_epochs=0",
            "trainer.max_nonfinite_steps=3",
            "logging.recon_every_steps=0",
        ),
        timeout=600,
    )
    assert done.returncode == 1
    assert "the loss was non-finite for 3 consecutive steps (trainer.max_nonfinite_steps=3)" in done.stderr
    saved = ckpt.latest_valid_checkpoint(runs / "diverges")
    assert saved.meta["reason"] == "nonfinite" and str(saved.path) in done.stderr
    assert max(series(runs / "diverges", "train/nonfinite_skipped").values()) == 3
    exported = run_cli("export", str(saved.path), str(tmp_path / "export"))
    assert exported.returncode == 0, exported.stderr[-3000:]
    state, _ = load_weights(tmp_path / "export")
    assert all(torch.isfinite(tensor).all() for tensor in state.values())
