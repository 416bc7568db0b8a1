"""Outputs a user keeps: the reconstruction PNG (labelled, large enough to see), the confusion PNG
(title, readable ticks), results tables without a meaningless top-5, and the W&B sync hint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain.evaluate.metrics import SplitMetrics
from pretrain.evaluate.reports import results_table, write_confusion_png
from pretrain.quickstart.flow import QuickstartResult, StageRecord
from pretrain.quickstart.report import render_markdown, wandb_runs, wandb_sync_glob
from pretrain.train.recon_image import COLUMNS, MIN_FRAME_SIDE, Layout, reconstruction_image


def _panels(frames: int = 4, side: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (frames, 3, side, 3 * side), dtype=np.uint8)  # (T, C, H, 3W)


def test_reconstruction_png_is_labelled_and_enlarged():
    panels = _panels()
    image = reconstruction_image(panels, "step 20")
    layout = Layout(frames=4, height=32, width=32)
    assert image.size == layout.size and layout.scale * 32 >= MIN_FRAME_SIDE
    pixels = np.asarray(image)
    for column in range(len(COLUMNS)):
        left, top, right, bottom = layout.box(3, column)
        tile = pixels[top:bottom, left:right][:: layout.scale, :: layout.scale]  # back to (H, W, C)
        assert np.array_equal(tile, panels[3, :, :, column * 32 : (column + 1) * 32].transpose(1, 2, 0))
        label_band = pixels[layout.font_size : layout.header - 2, left:right]
        assert (label_band < 128).any(), f"no label drawn above column {COLUMNS[column]}"
    assert (pixels[: layout.font_size + 4, : layout.box(0, 1)[0]] < 128).any()  # the title
    for slot in range(4):  # each row's label ("frame 2/4") left of its first frame
        top, bottom = layout.box(slot, 0)[1::2]
        assert (pixels[top:bottom, : layout.margin] < 128).any(), f"no label left of row {slot}"


def test_a_large_frame_is_not_enlarged():
    assert Layout(frames=2, height=224, width=224).scale == 1


def _figure_of(monkeypatch, confusion: torch.Tensor, names: list[str], title: str, tmp_path: Path):
    import matplotlib.pyplot as plt

    closed = []
    monkeypatch.setattr(plt, "close", closed.append)
    write_confusion_png(confusion, names, tmp_path / "confusion.png", title)
    assert (tmp_path / "confusion.png").stat().st_size > 0
    return closed[0]


def test_confusion_png_has_a_title_and_readable_ticks(monkeypatch, tmp_path):
    figure = _figure_of(
        monkeypatch,
        torch.tensor([[3, 1, 0], [0, 4, 0], [1, 0, 2]]),
        ["run", "jump", "swim"],
        "finetune-s1, split 1, seed 0",
        tmp_path,
    )
    axes = figure.axes[0]
    assert axes.get_title() == "finetune-s1, split 1, seed 0"
    assert [t.get_text() for t in axes.get_xticklabels()] == ["run", "jump", "swim"]
    assert min(t.get_fontsize() for t in axes.get_xticklabels() + axes.get_yticklabels()) >= 10
    assert "0.75" in [t.get_text() for t in axes.texts]  # recall of "run" written in its cell


def test_confusion_png_names_every_class_of_ucf101(monkeypatch, tmp_path):
    names = [f"class{i}" for i in range(101)]
    figure = _figure_of(monkeypatch, torch.eye(101, dtype=torch.long), names, "ucf", tmp_path)
    assert len(figure.axes[0].get_yticklabels()) == 101 and figure.get_size_inches()[0] >= 24


@pytest.mark.parametrize("num_classes, has_top5", [(4, False), (5, False), (6, True), (None, True)])
def test_results_table_drops_top5_with_5_classes_or_fewer(num_classes, has_top5):
    markdown, summary = results_table({1: SplitMetrics(0.5, 1.0, 0.5, 8, num_classes)}, "tiny")
    assert ("| top5 (%)" in markdown) == has_top5
    assert summary["splits"]["1"]["top5"] == 1.0  # the JSON keeps every figure


def _quickstart_result(tmp_path: Path, num_classes: int) -> QuickstartResult:
    def record(name: str) -> StageRecord:
        run_dir = tmp_path / "runs" / name
        (run_dir / "wandb" / f"offline-run-2026-{name}").mkdir(parents=True)
        return StageRecord(name, run_dir, 1.0, {"test/top1": 0.5, "test/top5": 1.0})

    finetunes = [(kind, 0, record(f"finetune-{kind}-seed0")) for kind in ("pretrained", "scratch")]
    return QuickstartResult(tmp_path, record("pretrain"), finetunes, 3.0, num_classes=num_classes)


@pytest.mark.parametrize("num_classes, has_top5", [(4, False), (10, True)])
def test_quickstart_table_drops_top5_with_5_classes_or_fewer(tmp_path, num_classes, has_top5):
    from pretrain.quickstart.report import summarize

    markdown = render_markdown(summarize(_quickstart_result(tmp_path, num_classes)))
    assert ("test top-5" in markdown) == has_top5
    header, rule, row = [line for line in markdown.splitlines() if line.startswith("|")][:3]
    assert header.count("|") == rule.count("|") == row.count("|") == (8 if has_top5 else 7)  # + losses column


def test_the_wandb_sync_hint_covers_every_offline_run(tmp_path):
    result = _quickstart_result(tmp_path, 4)
    pattern = wandb_sync_glob(result)
    assert "*" in pattern and len(wandb_runs(result)) == 3
    assert sorted(Path("/").glob(pattern.lstrip("/"))) == sorted(wandb_runs(result))
