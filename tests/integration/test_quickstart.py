"""`tubelet quickstart --small` end to end: real videos, shards, pretraining, two fine-tunes,
multi-view tests, and every output the README promises, with plausible values."""

import json
import re
import subprocess
import sys
from statistics import mean

import pytest
from PIL import Image

from pretrain.cli import main
from pretrain.quickstart.report import metric_series, window_means

CONSOLE: list[str] = []  # what a user sees: stdout and stderr of `tubelet quickstart --small`
LINE_BUDGET = 130  # stage lines, progress every few steps, the results table, the files (110 on 2026-12-05; 225 before, 102 of them "wandb:")


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """The command as a user runs it, in its own process (the console's logging as configured)."""
    out = tmp_path_factory.mktemp("quickstart")
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from pretrain.cli import main; sys.exit(main(sys.argv[1:]))"]
        + ["quickstart", "--out", str(out), "--small"],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    CONSOLE[:] = (done.stdout + done.stderr).splitlines()
    return out


@pytest.mark.slow
def test_overall_progress_a_line_per_stage_with_elapsed_and_eta(quickstart):
    stages = [  # "... quickstart: stage 2/3 (finetune pretrained seed 0) · elapsed 0:01:02 · ETA 0:00:41 ..."
        line.split("quickstart: ", 1)[1].removesuffix(" ...")
        for line in CONSOLE
        if re.search(r"quickstart: stage \d/3 ", line)
    ]
    assert [line.split(" (")[0] for line in stages] == [f"stage {i}/3" for i in (1, 2, 3)]
    assert "(pretrain) · elapsed" in stages[0] and stages[0].endswith("ETA ?")
    assert all(re.search(r"elapsed \d+:\d\d:\d\d · ETA \d+:\d\d:\d\d$", line) for line in stages[1:])


@pytest.mark.slow
def test_a_default_run_prints_stages_progress_and_results_only(quickstart):
    assert len(CONSOLE) <= LINE_BUDGET, "\n".join(CONSOLE)
    noise = ("wandb:", "GPU available", "TPU available", "litlogger", "SplitMetrics(")
    assert not [line for line in CONSOLE if any(word in line for word in noise)]
    loggers = {match[1] for line in CONSOLE if (match := re.match(r"\S+ \S+ [A-Z]+ ([\w.]+): ", line))}
    assert loggers and all(name.startswith("pretrain.") for name in loggers), loggers
    # The libraries' INFO chatter is in each stage's log file instead.
    assert "GPU available" in (quickstart / "runs" / "pretrain" / "tubelet.log").read_text()


@pytest.mark.slow
def test_results_table_has_both_models_with_valid_accuracies(quickstart):
    summary = json.loads((quickstart / "results.json").read_text())
    runs = summary["finetune"]
    assert [(run["init"], run["seed"]) for run in runs] == [("pretrained", 0), ("scratch", 0)]
    for run in runs:
        assert 0.0 <= run["test_top1"] <= run["test_top5"] <= 1.0
        assert run["clips_per_s"] > 0 and run["seconds"] > 0
    assert set(summary["mean_test_top1"]) == {"pretrained", "scratch"}
    markdown = (quickstart / "results.md").read_text()
    assert "| pretrained | 0 |" in markdown and "| scratch | 0 |" in markdown
    assert (
        "**A plumbing check, not a result** (`--small`)" in markdown
        and "25% is chance for 4 classes" in markdown
    )


@pytest.mark.slow
def test_pretraining_loss_decreased(quickstart):
    summary = json.loads((quickstart / "results.json").read_text())
    losses = [value for _, value in metric_series(quickstart / "runs" / "pretrain", "train/loss")]
    assert len(losses) >= 8
    quarter = len(losses) // 4
    assert mean(losses[-quarter:]) < mean(losses[:quarter])
    series = metric_series(quickstart / "runs" / "pretrain", "train/loss")
    assert (summary["pretrain"]["loss_first_10pct"], summary["pretrain"]["loss_last_10pct"]) == window_means(
        series
    )
    assert summary["pretrain"]["steps"] == 96 // 4 * 8


@pytest.mark.slow
@pytest.mark.parametrize("name", ["loss_curves.png", "reconstruction.png", "confusion.png"])
def test_pngs_are_readable_images(quickstart, name):
    with Image.open(quickstart / name) as image:
        image.verify()
    with Image.open(quickstart / name) as image:
        assert image.size[0] >= 100 and image.size[1] >= 50


@pytest.mark.slow
def test_offline_wandb_runs_and_resolved_configs_are_written(quickstart):
    runs = sorted((quickstart / "runs").iterdir())
    assert [run.name for run in runs] == ["finetune-pretrained-seed0", "finetune-scratch-seed0", "pretrain"]
    for run in runs:
        assert (run / "config.yaml").is_file()
        assert list((run / "wandb").glob("offline-run-*")), run
    assert (quickstart / "export" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_finetuned_checkpoint_exports_a_classifier_with_its_class_names(quickstart, tmp_path):
    import torch

    from pretrain.weights import load_finetuned

    run = quickstart / "runs" / "finetune-pretrained-seed0"
    assert main(["export", str(run), str(tmp_path / "export")]) == 0
    exported = json.loads((tmp_path / "export" / "config.json").read_text())
    assert exported["kind"] == "classifier"
    assert exported["class_names"] == ["MoveUpSlow", "MoveUpFast", "MoveDownSlow", "MoveDownFast"]
    from_run, from_export = load_finetuned(run), load_finetuned(tmp_path / "export")
    video = torch.randn(2, 3, 8, 64, 64)  # (B, C, T, H, W)
    with torch.no_grad():
        assert torch.allclose(from_run.model(video), from_export.model(video), atol=1e-6)
