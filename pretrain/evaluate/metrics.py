"""Multi-view scores → per-video predictions → accuracy metrics, as VideoMAE reports them.

VideoMAE's test merges the views of one video by averaging their softmax probabilities, then ranks;
top-1 / top-5 are over videos, not views. Mean per-class accuracy is the macro average of recalls.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

import torch
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix


@dataclass
class VideoScores:
    keys: list[str]
    probs: torch.Tensor  # (V, K) mean of the views' softmax probabilities
    labels: torch.Tensor  # (V,) long


@dataclass
class SplitMetrics:
    top1: float
    top5: float
    mean_class_accuracy: float
    num_videos: int
    num_classes: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """`top-1 46.4% · top-5 100.0% · mean class 46.4% · 28 videos`."""
        return (
            f"top-1 {100 * self.top1:.1f}% · top-5 {100 * self.top5:.1f}% · "
            f"mean class {100 * self.mean_class_accuracy:.1f}% · {self.num_videos} videos"
        )


def merge_views(keys: list[str], logits: torch.Tensor, labels: torch.Tensor) -> VideoScores:
    """Average the softmax of every view of a video; each key appears once in the result.

    `logits` (M, K) are per view, `keys`/`labels` (M,) name the video of each view.
    """
    if logits.ndim != 2 or len(keys) != logits.shape[0] or labels.shape != (logits.shape[0],):
        raise ValueError(
            f"expected logits (M, K) with M keys and labels (M,), got {tuple(logits.shape)}, "
            f"{len(keys)} keys, labels {tuple(labels.shape)}"
        )
    probs = logits.float().softmax(dim=-1)  # (M, K)
    rows: dict[str, list[int]] = defaultdict(list)
    for row, key in enumerate(keys):
        rows[key].append(row)
    video_keys = sorted(rows)
    merged = torch.stack([probs[rows[key]].mean(0) for key in video_keys])  # (V, K)
    video_labels = torch.stack([labels[rows[key][0]] for key in video_keys])
    for key in video_keys:
        if not (labels[rows[key]] == labels[rows[key][0]]).all():
            raise ValueError(f"views of video {key!r} carry different labels")
    return VideoScores(keys=video_keys, probs=merged, labels=video_labels.long())


def split_metrics(scores: VideoScores) -> SplitMetrics:
    num_classes = scores.probs.shape[1]
    top_k = min(5, num_classes)
    top1 = multiclass_accuracy(scores.probs, scores.labels, num_classes, average="micro", top_k=1)
    top5 = multiclass_accuracy(scores.probs, scores.labels, num_classes, average="micro", top_k=top_k)
    per_class = multiclass_accuracy(scores.probs, scores.labels, num_classes, average="none")
    present = torch.bincount(scores.labels, minlength=num_classes) > 0  # absent classes don't count
    return SplitMetrics(
        top1=float(top1),
        top5=float(top5),
        mean_class_accuracy=float(per_class[present].mean()),
        num_videos=len(scores.keys),
        num_classes=num_classes,
    )


def confusion_matrix(scores: VideoScores) -> torch.Tensor:
    """(K, K) counts, rows = true class, columns = predicted class."""
    num_classes = scores.probs.shape[1]
    return multiclass_confusion_matrix(scores.probs, scores.labels, num_classes)
