"""A labeled synthetic dataset whose classes differ only by motion, in the official UCF101 layout.

Every video shows a bright square over a static noise background; start position, colour and
background are drawn from the same distributions for every class, and the square wraps around the
frame, so any single frame is equally likely under every class. Only the motion tells the classes
apart: vertical direction (up / down) × speed (slow / fast). A model that reads frames in the wrong
order cannot tell up from down, which is what the frame-shuffle test checks.

Motions are vertical on purpose: the fine-tuning stream flips clips horizontally (as UCF101 recipes
do), which would swap left and right but leaves up and down alone. Speeds are 4× apart so that the
random-resized-crop zoom of the `tiny` recipe cannot turn one speed into the other.

Written with `pretrain.data.generated.corpora.write_ucf101_tree` (real MPEG-4 AVIs, official split files), so
it goes through the real shard builder: `tubelet shards build ucf101 ROOT OUT`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pretrain.data.generated.corpora import Corpus, FrameMaker, write_ucf101_tree
from pretrain.data.generated.synthetic import moving_square_frames

# Class name -> velocity (dy, dx) in pixels per frame; negative dy moves up.
MOTIONS: dict[str, tuple[float, float]] = {
    "MoveUpSlow": (-1.0, 0.0),
    "MoveUpFast": (-4.0, 0.0),
    "MoveDownSlow": (1.0, 0.0),
    "MoveDownFast": (4.0, 0.0),
}

# All 25 UCF101 groups: split k tests groups 7(k-1)+1..7k, so 7 of 25 clips per class are test.
ALL_GROUPS = tuple(range(1, 26))


def motion_frames(
    classes: Sequence[str], num_frames: int = 32, size: tuple[int, int] = (64, 64), square: int = 12
) -> FrameMaker:
    """(class index, seed) -> uint8 frames `(T, H, W, 3)` moving at that class's velocity."""
    unknown = [name for name in classes if name not in MOTIONS]
    if unknown:
        raise ValueError(f"unknown motion classes {unknown}; choose from {list(MOTIONS)}")

    def make(class_index: int, seed: int) -> np.ndarray:
        velocity = MOTIONS[classes[class_index]]
        return moving_square_frames(num_frames, size, velocity, square=square, seed=seed)

    return make


def write_motion_dataset(
    root: str | Path,
    classes: Sequence[str] = tuple(MOTIONS),
    groups: Sequence[int] = ALL_GROUPS,
    clips_per_group: int = 1,
    num_frames: int = 32,
    size: tuple[int, int] = (64, 64),
    fps: int = 25,
) -> Corpus:
    """`root/UCF-101/<Class>/v_<Class>_gXX_cYY.avi` + `root/ucfTrainTestlist/` for the motion classes.

    With the defaults each class has 25 clips; split 1 holds 18 train / 7 test clips per class.
    """
    classes = list(classes)
    frames = motion_frames(classes, num_frames=num_frames, size=size)
    return write_ucf101_tree(
        root, classes=classes, groups=groups, clips_per_group=clips_per_group, frames=frames, fps=fps
    )
