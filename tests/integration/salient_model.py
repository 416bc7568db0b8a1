"""A tiny classifier fine-tuned (a plain PyTorch loop, one thread) on videos whose class depends
only on a small moving object over a cluttered background, saved as a Tubelet export; and test
videos of the same kind, really encoded, with the object's boxes. Training and clips are
`pretrain.bench.explain`'s (`tubelet bench explain` measures every backbone the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pretrain.bench.explain import (
    CLASSES,
    FRAMES,
    SIZE,
    held_out_clips,
    salient_spec,
    train_salient_classifier,
)
from pretrain.data.generated.salient_object import SalientClip
from pretrain.data.video.write import write_video
from pretrain.weights import save_export

__all__ = ["CLASSES", "FRAMES", "SIZE", "SPEC", "salient_classifier"]

SPEC = salient_spec("vit")


def train_classifier(out: Path) -> Path:
    save_export(train_salient_classifier("vit"), {"data": {"stride": 1}}, out, class_names=CLASSES)
    return out


def held_out_videos(root: Path, count: int) -> list[tuple[Path, SalientClip]]:
    """`count` clips of fresh seeds (never trained on) as MP4 files, classes in turn."""
    return [
        (write_video(root / f"object_{i}.mp4", clip.frames, fps=8), clip)
        for i, clip in enumerate(held_out_clips(count))
    ]


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
