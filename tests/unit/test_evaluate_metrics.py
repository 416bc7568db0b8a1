"""View merging, metrics and result tables against hand-computed values."""

import json

import pytest
import torch
from PIL import Image

from pretrain.evaluate.metrics import SplitMetrics, confusion_matrix, merge_views, split_metrics
from pretrain.evaluate.reports import results_table, write_confusion_png, write_predictions, write_results


def _views():
    # video a (label 0): two views whose mean softmax favours class 0 although one view says 1
    # video b (label 1): one view, class 2 wins -> wrong at top-1, right within top-2
    keys = ["a", "b", "a"]
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 1.0, 2.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1, 0])
    return keys, logits, labels


def test_views_are_merged_by_mean_softmax_once_per_video():
    scores = merge_views(*_views())
    assert scores.keys == ["a", "b"]
    expected_a = (torch.tensor([4.0, 0, 0]).softmax(0) + torch.tensor([0.0, 1, 0]).softmax(0)) / 2
    assert torch.allclose(scores.probs[0], expected_a)
    assert scores.labels.tolist() == [0, 1]


def test_metrics_match_hand_computed_values():
    metrics = split_metrics(merge_views(*_views()))
    assert metrics.top1 == pytest.approx(0.5)
    assert metrics.top5 == pytest.approx(1.0)  # top-k is capped at the number of classes
    assert metrics.mean_class_accuracy == pytest.approx(0.5)  # class 0: 1/1, class 1: 0/1
    assert metrics.num_videos == 2
    assert confusion_matrix(merge_views(*_views())).tolist() == [[1, 0, 0], [0, 0, 1], [0, 0, 0]]


def test_views_with_conflicting_labels_are_rejected():
    keys, logits, labels = _views()
    with pytest.raises(ValueError, match="views of video 'a' carry different labels"):
        merge_views(keys, logits, torch.tensor([0, 1, 1]))


def test_results_table_puts_split_one_beside_the_mean(tmp_path):
    per_split = {
        1: SplitMetrics(0.9, 1.0, 0.8, 10),
        2: SplitMetrics(0.8, 1.0, 0.7, 11),
        3: SplitMetrics(0.7, 0.9, 0.6, 12),
    }
    markdown, summary = results_table(per_split, "tiny")
    assert "| top1 (%) | 90.00 | 80.00 | 70.00 | 80.00 |" in markdown
    assert summary["mean"]["top1"] == pytest.approx(0.8) and summary["mean"]["num_splits"] == 3
    md_path, json_path = write_results(per_split, "tiny", tmp_path)
    assert json.loads(json_path.read_text())["splits"]["1"]["num_videos"] == 10
    assert md_path.read_text() == markdown


def test_prediction_lines_and_confusion_png(tmp_path):
    scores = merge_views(*_views())
    write_predictions(scores, ["run", "jump", "swim"], tmp_path / "predictions.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert [r["key"] for r in rows] == ["a", "b"]
    assert rows[1]["pred"] == 2 and rows[1]["topk"][0]["class"] == "swim" and len(rows[1]["topk"]) == 3
    write_confusion_png(confusion_matrix(scores), ["run", "jump", "swim"], tmp_path / "confusion.png")
    with Image.open(tmp_path / "confusion.png") as image:
        assert image.size[0] > 100 and image.size[1] > 100
