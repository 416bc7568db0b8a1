"""Pretraining in this process (one rank, real shards, tiny VideoMAE): it learns, writes the run
layout, tracks to CSV and offline W&B, resumes onto the exact same trajectory, and stops on
non-finite losses with a usable checkpoint."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pretrain_runs import build_folder_shards, read_metrics, series, tiny_config
from wandb_history import history

from pretrain.train.entry import run_stage
from pretrain.train.nan_guard import TrainingDiverged
from pretrain.train.recon_image import Layout
from pretrain.weights import export_checkpoint, from_pretrained, load_weights
from pretrain.weights import layout as ckpt

STEPS, SAVE_EVERY = 24, 12


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return build_folder_shards(tmp_path_factory.mktemp("corpus"))


class Recorded(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture(scope="module")
def reference_run(shards, tmp_path_factory):
    """The reference run, with what it logged, warned and printed on stderr (not a terminal here)."""
    out = tmp_path_factory.mktemp("runs")
    config = tiny_config(
        shards,
        out,
        "reference",
        f"trainer.max_steps={STEPS}",
        f"trainer.checkpoint_every_steps={SAVE_EVERY}",
        f"logging.recon_every_steps={SAVE_EVERY}",
        "logging.wandb=offline",
    )
    handler, root, stderr = Recorded(), logging.getLogger(), io.StringIO()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)  # setLevel, not assignment: it clears the loggers' cached isEnabledFor
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(stderr):
            warnings.simplefilter("always")
            result = run_stage(config)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    return result, handler.lines, [str(w.message) for w in caught], stderr.getvalue()


@pytest.fixture(scope="module")
def reference(reference_run):
    return reference_run[0]


def test_loss_decreases_over_a_few_dozen_steps(reference):
    losses = series(reference.run_dir, "train/loss")
    assert sorted(losses) == list(
        range(STEPS)
    )  # one logged loss per step (logged before the step counter moves)
    first, last = (
        np.mean([losses[s] for s in range(5)]),
        np.mean([losses[s] for s in range(STEPS - 5, STEPS)]),
    )
    assert last < 0.9 * first, (first, last)
    assert reference.global_step == STEPS


def test_run_directory_layout(reference):
    run = reference.run_dir
    assert (run / "config.yaml").is_file() and json.loads((run / "run.json").read_text())["tubelet_version"]
    steps = [p.name for p in ckpt.list_checkpoints(run)]
    assert steps == ["step-00000024", "step-00000012"]
    assert (run / "checkpoints" / "last").resolve().name == "step-00000024"
    for name in steps:
        folder = run / "checkpoints" / name
        assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "meta.json", "state.ckpt"]
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["step"] == int(name[-8:]) and meta["deepspeed"] is False and meta["world_size"] == 1
    assert not list((run / "checkpoints").glob(".tmp-*"))


def test_metrics_tracked_in_csv_and_offline_wandb(reference):
    rows = read_metrics(reference.run_dir)
    logged = {key for row in rows for key, value in row.items() if value}
    assert {
        "train/loss",
        "train/lr",
        "train/grad_norm",
        "perf/clips_per_s",
        "perf/tokens_per_s",
        "perf/tflops_per_device",
        "perf/data_wait_fraction",
        "mem/host_peak_rss_gb",
        "data/skipped_samples",
    } <= logged
    lr = series(reference.run_dir, "train/lr")
    assert max(lr.values()) == pytest.approx(0.05 * 4 / 256, rel=1e-3)  # base_lr × global batch / 256
    runs = list((reference.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    records = b"".join(path.read_bytes() for path in runs[0].glob("*.wandb"))  # what `wandb sync` uploads
    for name in ("train/loss", "train/lr", "perf/clips_per_s", "perf/data_wait_fraction", "recon/video"):
        assert name.encode() in records, name
    first_loss = next(row["train/loss"] for row in rows if row.get("train/loss"))
    assert first_loss.encode() in records  # the same value went to W&B and to the CSV
    videos = list((runs[0] / "files" / "media" / "videos").rglob("*.mp4"))
    assert len(videos) == 2 and all(v.stat().st_size > 0 for v in videos)


def test_wandb_history_is_logged_against_the_global_step(reference):
    rows = history(reference.run_dir)
    assert all(row["_step"] == row["trainer/global_step"] for row in rows)
    assert [row["_step"] for row in rows] == list(range(STEPS + 1))  # no jumps: media share the step's row
    media_rows = [row["_step"] for row in rows if "recon/grid" in row]
    assert media_rows == [SAVE_EVERY, STEPS] and all("recon/video" in rows[s] for s in media_rows)
    assert [rows[s]["recon/grid"]["caption"] for s in media_rows] == ["step-00000012", "step-00000024"]
    (run,) = (reference.run_dir / "wandb").glob("offline-run-*")
    grids = sorted(
        p.name.split("_")[1] for p in (run / "files" / "media" / "images" / "recon").glob("grid_*.png")
    )
    assert grids == ["12", "24"]  # named like the PNGs in reconstructions/


def test_progress_is_plain_log_lines_with_the_run_eta_without_a_terminal(reference_run):
    _, lines, _, _ = reference_run
    progress = [line.split(": ", 1)[1] for line in lines if line.startswith("pretrain.train.progress: ")]
    assert [int(re.match(r"step (\d+)/24 ", line).group(1)) for line in progress] == list(range(1, STEPS + 1))
    pattern = r"step 24/24 \(100%\) · elapsed \d+:\d\d:\d\d · ETA 0:00:00 · .*train/lr \d\.\d\de-\d\d"
    assert re.fullmatch(pattern, progress[-1]), progress[-1]
    assert all(re.search(r"ETA \d+:\d\d:\d\d", line) for line in progress)


def test_library_noise_is_silenced(reference_run):
    _, lines, warned, stderr = reference_run
    heard = "\n".join([*lines, *warned, stderr])
    for noise in (
        "Tip: For seamless",
        "LeafSpec",
        "anonymous setting",
        "smaller than the logging interval",
        "dataloader is not resumable",
    ):
        assert noise not in heard, noise


def test_reconstruction_grid_written(reference):
    recon = reference.run_dir / "reconstructions"
    assert sorted(p.name for p in recon.glob("*.png")) == ["step-00000012.png", "step-00000024.png"]
    image = Image.open(recon / "step-00000024.png").convert("RGB")
    layout = Layout(frames=8, height=64, width=64)  # 8 frames of original | masked | reconstruction
    assert image.size == layout.size and layout.scale >= 2
    masked = np.stack(
        [np.asarray(image.crop(layout.box(slot, 1)))[:: layout.scale, :: layout.scale] for slot in range(8)]
    )  # (8, 64, 64, 3), back to the model's pixels
    assert (masked.reshape(8, 4, 16, 4, 16, 3).max(axis=(2, 4, 5)) == 0).sum() == 8 * int(0.75 * 16)
    assert (recon / "step-00000024.mp4").stat().st_size > 0


def test_resume_follows_the_uninterrupted_trajectory(reference, shards, tmp_path):
    halfway = reference.run_dir / "checkpoints" / "step-00000012"
    config = tiny_config(
        shards,
        tmp_path,
        "resumed",
        f"trainer.max_steps={STEPS}",
        f"trainer.checkpoint_every_steps={SAVE_EVERY}",
        f"trainer.resume={halfway}",
        "logging.wandb=disabled",
        "logging.recon_every_steps=0",
    )
    result = run_stage(config)
    assert result.resumed_from == halfway.resolve() and result.global_step == STEPS
    expected, resumed = series(reference.run_dir, "train/loss"), series(result.run_dir, "train/loss")
    assert sorted(resumed) == list(range(SAVE_EVERY, STEPS))
    for step in resumed:
        assert resumed[step] == pytest.approx(expected[step], rel=1e-5, abs=1e-6), step
    expected_lr, resumed_lr = series(reference.run_dir, "train/lr"), series(result.run_dir, "train/lr")
    assert all(resumed_lr[s] == pytest.approx(expected_lr[s], rel=1e-6) for s in resumed_lr)


def test_export_loads_into_the_model_format(reference, tmp_path):
    out = export_checkpoint(reference.run_dir / "checkpoints" / "last", tmp_path / "export")
    state, model_config = load_weights(out)
    model = from_pretrained(reference.last_checkpoint)
    assert model_config["kind"] == "pretraining" and model_config["dim"] == 64
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_nonfinite_losses_stop_the_run_with_a_checkpoint(shards, tmp_path, caplog):
    config = tiny_config(
        shards,
        tmp_path,
        "diverges",
        "trainer.max_steps=40",
        "optim.base_lr=1e12",
        "optim.clip_grad=null",
        "optim.warmup_epochs=0",
        "trainer.max_nonfinite_steps=3",
        "logging.wandb=disabled",
        "logging.recon_every_steps=0",
    )
    with (
        pytest.raises(TrainingDiverged, match="non-finite for 3 consecutive steps") as error,
        caplog.at_level(logging.WARNING, logger="pretrain.train.stage"),
    ):
        run_stage(config)
    resume = f"tubelet pretrain {tmp_path}/diverges/config.yaml trainer.run_name=diverges"
    assert any(
        resume in record.getMessage() and "trainer.resume=auto" in record.getMessage()
        for record in caplog.records
    )
    saved = ckpt.latest_valid_checkpoint(tmp_path / "diverges")
    assert saved is not None and saved.meta["reason"] == "nonfinite" and str(saved.path) in str(error.value)
    model = from_pretrained(saved.path)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    skipped = series(tmp_path / "diverges", "train/nonfinite_skipped")
    assert max(skipped.values()) == 3
