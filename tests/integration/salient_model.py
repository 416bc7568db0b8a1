"""A tiny classifier fine-tuned (a plain PyTorch loop, one thread) on videos whose class depends
only on a small moving object over a cluttered background, saved as a Tubelet export; and test
videos of the same kind, really encoded, with the object's boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain.data.augment.transforms import normalize_video
from pretrain.data.generated.salient_object import OBJECT_COLOURS, SalientClip, salient_object_clip
from pretrain.data.video.write import write_video
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import VideoClassifier
from pretrain.weights import save_export

FRAMES, SIZE = 8, 32
SPEC = ArchSpec.from_size("tiny", img_size=SIZE, num_frames=FRAMES, tubelet_size=2, patch_size=8)
CLASSES = list(OBJECT_COLOURS)
STEPS, BATCH = 120, 24


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    clips = [
        salient_object_clip(i % len(CLASSES), seed=step * BATCH + i, num_frames=FRAMES, size=(SIZE, SIZE))
        for i in range(BATCH)
    ]
    frames = torch.from_numpy(np.stack([c.frames for c in clips])).permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)
    return normalize_video(frames), torch.tensor([c.label for c in clips])


def train_classifier(out: Path) -> Path:
    torch.manual_seed(0)
    model = VideoClassifier(SPEC, len(CLASSES), head_init_scale=1.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    for step in range(STEPS):
        video, label = batch(step)
        loss = torch.nn.functional.cross_entropy(model(video), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_export(model.eval(), {"data": {"stride": 1}}, out, class_names=CLASSES)
    return out


def held_out_videos(root: Path, count: int) -> list[tuple[Path, SalientClip]]:
    """`count` clips of fresh seeds (never trained on) as MP4 files, classes in turn."""
    videos = []
    for i in range(count):
        clip = salient_object_clip(i % len(CLASSES), seed=10_000 + i, num_frames=FRAMES, size=(SIZE, SIZE))
        videos.append((write_video(root / f"object_{i}.mp4", clip.frames, fps=8), clip))
    return videos


@pytest.fixture(scope="session")
def salient_classifier(tmp_path_factory) -> tuple[Path, list[tuple[Path, SalientClip]]]:
    """The fine-tuned export and 9 held-out test videos, shared by the explain and stream tests."""
    root = tmp_path_factory.mktemp("salient")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # two cores shared by many processes
    try:
        return train_classifier(root / "model"), held_out_videos(root, 9)
    finally:
        torch.set_num_threads(previous)
