"""Evaluation outputs: per-video predictions (JSONL), confusion-matrix PNG, and the results table
with split 1 beside the 3-split mean (VideoMAE reports split 1; the community reports the mean)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from statistics import mean

import numpy as np
import torch

from pretrain.evaluate.metrics import SplitMetrics, VideoScores

METRIC_NAMES = ("top1", "top5", "mean_class_accuracy")


def write_predictions(scores: VideoScores, class_names: Sequence[str], path: Path, top_k: int = 5) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    k = min(top_k, scores.probs.shape[1])
    values, indices = scores.probs.topk(k, dim=-1)  # (V, k)
    with open(path, "w") as out:
        for key, label, probs, classes in zip(scores.keys, scores.labels, values, indices):
            row = {
                "key": key,
                "label": int(label),
                "class": class_names[int(label)],
                "pred": int(classes[0]),
                "topk": [
                    {"class": class_names[int(c)], "index": int(c), "prob": round(float(p), 6)}
                    for c, p in zip(classes, probs)
                ],
            }
            out.write(json.dumps(row) + "\n")


def write_confusion_png(
    confusion: torch.Tensor, class_names: Sequence[str], path: Path, title: str = ""
) -> None:
    """Row-normalized confusion matrix (recall per true class) with every class named on both axes;
    values written in the cells when there are few classes. `title`: e.g. run, split and seed."""
    import matplotlib

    matplotlib.use("Agg")  # no display on training nodes
    import matplotlib.pyplot as plt

    num_classes = confusion.shape[0]
    row_sums = confusion.sum(1, keepdim=True).clamp(min=1)
    normalized = (confusion.float() / row_sums).numpy()  # recall per true class
    side = max(6.0, min(30.0, 0.22 * num_classes + 4))
    fontsize = 10 if num_classes <= 20 else 8 if num_classes <= 50 else 6
    figure, axes = plt.subplots(figsize=(side, side))
    image = axes.imshow(normalized, cmap="viridis", vmin=0.0, vmax=1.0)
    axes.set_title(title or "confusion matrix", fontsize=12)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_xticks(
        range(num_classes), class_names, rotation=45, ha="right", rotation_mode="anchor", fontsize=fontsize
    )
    axes.set_yticks(range(num_classes), class_names, fontsize=fontsize)
    if num_classes <= 15:
        for (row, column), value in np.ndenumerate(normalized):
            axes.text(
                column,
                row,
                f"{value:.2f}",
                ha="center",
                va="center",
                fontsize=fontsize,
                color="black" if value > 0.5 else "white",
            )
    figure.colorbar(image, ax=axes, fraction=0.046)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def results_table(per_split: dict[int, SplitMetrics], model_name: str) -> tuple[str, dict]:
    """Markdown and JSON with one row per metric: each split, split 1, and the mean over splits."""
    splits = sorted(per_split)
    summary: dict = {"model": model_name, "splits": {str(s): per_split[s].as_dict() for s in splits}}
    summary["mean"] = {name: mean(getattr(per_split[s], name) for s in splits) for name in METRIC_NAMES}
    summary["mean"]["num_splits"] = len(splits)
    header = ["metric"] + [f"split {s}" for s in splits] + [f"mean of {len(splits)} split(s)"]
    lines = [f"Results: {model_name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in shown_metrics(per_split):
        cells = [f"{100 * getattr(per_split[s], name):.2f}" for s in splits]
        cells.append(f"{100 * summary['mean'][name]:.2f}")
        lines.append(f"| {name} (%) | " + " | ".join(cells) + " |")
    counts = [str(per_split[s].num_videos) for s in splits]
    lines.append("| test videos | " + " | ".join(counts) + " | |")
    if 1 not in per_split:
        lines += ["", "Split 1 (the split VideoMAE reports) was not evaluated."]
    return "\n".join(lines) + "\n", summary


def shown_metrics(per_split: dict[int, SplitMetrics]) -> tuple[str, ...]:
    """Top-5 is always 100% with 5 classes or fewer: the table leaves it out (the JSON keeps it)."""
    few = all(m.num_classes is not None and m.num_classes <= 5 for m in per_split.values())
    return tuple(name for name in METRIC_NAMES if not (few and name == "top5"))


def write_results(
    per_split: dict[int, SplitMetrics], model_name: str, out_dir: Path, warning: str | None = None
) -> tuple[Path, Path]:
    """results.md and results.json; a `warning` (evaluated on training videos) heads both."""
    markdown, summary = results_table(per_split, model_name)
    if warning:
        markdown = f"**WARNING: {warning}**\n\n{markdown}"
        summary = {"warning": warning, **summary}
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, json_path = out_dir / "results.md", out_dir / "results.json"
    md_path.write_text(markdown)
    json_path.write_text(json.dumps(summary, indent=2) + "\n")
    return md_path, json_path
