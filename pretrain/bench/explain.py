"""`tubelet bench explain`: is each explanation method faithful on each backbone?

A tiny classifier per backbone is trained (a plain PyTorch loop) on salient-object clips, whose
class is the colour of a small moving square over a cluttered static background
(`pretrain.data.generated.salient_object`). On held-out clips (fresh seeds) every method's map is
scored by the same two checks (`pretrain.evaluate.faithfulness`): the share of its mass inside the
square's box over the box's area share (1 = uniform), and the area under the deletion curve,
salient tokens first, beside the mean over random orders (a faithful map's is lower).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from pretrain.data.augment.transforms import normalize_video
from pretrain.data.generated.salient_object import OBJECT_COLOURS, SalientClip, salient_object_clip
from pretrain.evaluate.explain import METHODS, method_scores
from pretrain.evaluate.faithfulness import box_mass_ratio, deletion_areas
from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import BACKBONES
from pretrain.models.classifier import VideoClassifier

log = logging.getLogger(__name__)

FRAMES, SIZE = 8, 32
CLASSES = list(OBJECT_COLOURS)
STEPS, BATCH = 120, 24
HELD_OUT_SEED = 10_000
"""Held-out clips use seeds from here on; training batches use seeds below STEPS * BATCH."""


def salient_spec(backbone: str = "vit") -> ArchSpec:
    """The tiny spec the salient-object classifiers use: 8 frames of 32², a (4, 4, 4) grid."""
    return ArchSpec.from_size(
        "tiny", img_size=SIZE, num_frames=FRAMES, tubelet_size=2, patch_size=8, backbone=backbone
    )


def salient_clip(index: int, seed: int) -> SalientClip:
    return salient_object_clip(index % len(CLASSES), seed=seed, num_frames=FRAMES, size=(SIZE, SIZE))


def clip_video(clips: list[SalientClip]) -> torch.Tensor:
    """Clips -> normalized float video (B, C, T, H, W)."""
    frames = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 4, 1, 2, 3)
    return normalize_video(frames)


def train_salient_classifier(backbone: str = "vit", steps: int = STEPS, seed: int = 0) -> VideoClassifier:
    """A tiny classifier of `backbone` trained on `steps` fresh batches of salient-object clips, in
    one thread: the thread count changes the order of float sums, which this short run amplifies (two
    threads trained the timesformer classifier to 44% held-out accuracy, one thread to 100%), so the
    figures are the same on any machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = VideoClassifier(salient_spec(backbone), len(CLASSES), head_init_scale=1.0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
        for step in range(steps):
            clips = [salient_clip(i, seed=step * BATCH + i) for i in range(BATCH)]
            label = torch.tensor([c.label for c in clips])
            loss = torch.nn.functional.cross_entropy(model(clip_video(clips)), label)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def held_out_clips(count: int) -> list[SalientClip]:
    """`count` clips of seeds never trained on, classes in turn."""
    return [salient_clip(i, seed=HELD_OUT_SEED + i) for i in range(count)]


@dataclass(frozen=True)
class MethodFigures:
    backbone: str
    method: str
    box_mass_ratio: float
    """Mean over clips of the map's mass in the box / the box's area share (1 = uniform)."""
    deletion_auc: float
    """Mean area under the class probability, most salient tokens deleted first."""
    random_deletion_auc: float
    """The same, tokens in random orders."""
    wins: float
    """Share of clips where salient-first deletion beats random."""


def measure(
    model: VideoClassifier, clips: list[SalientClip], method: str, backbone: str = "vit"
) -> MethodFigures:
    """Both checks of one method on the held-out clips, explaining each clip's true class."""
    rows = []
    for clip in clips:
        video = clip_video([clip])  # (1, C, T, H, W)
        scores = method_scores(model, video, method, clip.label)  # (T', H', W')
        salient, random = deletion_areas(model, video, scores, clip.label)
        rows.append((box_mass_ratio(scores, model.spec, clip.boxes), salient, random))
    figures = np.asarray(rows)  # (clips, 3)
    ratio, salient, random = figures.mean(0)
    wins = float((figures[:, 1] < figures[:, 2]).mean())
    return MethodFigures(backbone, method, float(ratio), float(salient), float(random), wins)


@torch.no_grad()
def accuracy(model: VideoClassifier, clips: list[SalientClip]) -> float:
    labels = torch.tensor([c.label for c in clips])
    return float((model(clip_video(clips)).argmax(-1) == labels).float().mean())


def run_explain_bench(
    backbones: tuple[str, ...] = tuple(BACKBONES),
    methods: tuple[str, ...] = METHODS,
    clips: int = 9,
    steps: int = STEPS,
) -> tuple[list[MethodFigures], dict[str, float]]:
    """(figures per backbone and method, held-out accuracy per backbone)."""
    held_out = held_out_clips(clips)
    figures, accuracies = [], {}
    for backbone in backbones:
        model = train_salient_classifier(backbone, steps)
        accuracies[backbone] = accuracy(model, held_out)
        log.info("bench explain: %s trained, held-out accuracy %.2f", backbone, accuracies[backbone])
        figures.extend(measure(model, held_out, method, backbone) for method in methods)
    return figures, accuracies


def render_table(figures: list[MethodFigures], accuracies: dict[str, float]) -> str:
    """Markdown: a row per method, a column per backbone; each cell 'box ratio, AUC vs random'."""
    backbones = list(dict.fromkeys(f.backbone for f in figures))
    methods = list(dict.fromkeys(f.method for f in figures))
    cell = {(f.backbone, f.method): f for f in figures}
    lines = [
        "| method | " + " | ".join(f"{b} (acc {100 * accuracies[b]:.0f}%)" for b in backbones) + " |",
        "|---" * (1 + len(backbones)) + "|",
    ]
    for method in methods:
        cells = [
            f"{c.box_mass_ratio:.1f}x; {c.deletion_auc:.2f} vs {c.random_deletion_auc:.2f}"
            for c in (cell[(b, method)] for b in backbones)
        ]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
