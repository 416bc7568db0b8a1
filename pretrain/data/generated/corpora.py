"""Small synthetic corpora laid out exactly like the official UCF101 and HMDB51 downloads (and a
plain folder corpus), with real encoded videos (MPEG-4 Part 2 in AVI, like the originals).

Used by tests, benchmarks and the quickstart. Each class moves its square in its own direction, so
a classifier can learn the classes; the official split-file formats are reproduced with CRLF line
endings and trailing spaces, and HMDB51 names carry spaces and punctuation like the real ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pretrain.data.generated.synthetic import moving_square_frames
from pretrain.data.video.write import write_video

FrameMaker = Callable[[int, int], np.ndarray]
"""(class index, video seed) -> uint8 frames `(T, H, W, 3)`."""

UCF101_CLASSES = (
    "ApplyEyeMakeup",
    "ApplyLipstick",
    "Archery",
    "BabyCrawling",
    "BalanceBeam",
    "BandMarching",
    "BaseballPitch",
    "Basketball",
    "BasketballDunk",
    "BenchPress",
)
HMDB51_CLASSES = (
    "brush_hair",
    "cartwheel",
    "catch",
    "chew",
    "clap",
    "climb",
    "climb_stairs",
    "dive",
    "draw_sword",
    "dribble",
)
# Title stems like the real HMDB51 file names (spaces, '#', '!', '(', ')', '&', apostrophes).
HMDB51_TITLES = (
    "April_09",
    "#20_Rhythm",
    "Glorious_Battle_(Video_Game)!",
    "Finding Nemo",
    "Rocky_&_Bullwinkle",
    "veoh_Harry's_dance",
    "Pirates_1_tells",
    "50_FIRST_DATES",
)
CORRUPT_KINDS = ("zero-byte", "truncated", "not-video")


@dataclass
class Corpus:
    """What was written: the root to pass to `tubelet shards build`, classes, relative videos."""

    root: Path
    classes: list[str]
    videos: list[str] = field(default_factory=list)
    """Video paths relative to the video root (as the shards' json `path` records them)."""
    splits: dict = field(default_factory=dict)
    """split id -> {"train": [paths], "test": [paths], "unused": [paths]}."""


def square_frames(
    num_frames: int = 16, size: tuple[int, int] = (64, 80), num_classes: int = 10
) -> FrameMaker:
    """Frames whose motion direction encodes the class."""

    def make(class_index: int, seed: int) -> np.ndarray:
        angle = 2 * math.pi * class_index / max(num_classes, 1)
        velocity = (2.0 * math.sin(angle), 2.0 * math.cos(angle))
        return moving_square_frames(num_frames, size, velocity, seed=seed)

    return make


def _class_names(classes: int | Sequence[str], known: Sequence[str], pattern: str) -> list[str]:
    if not isinstance(classes, int):
        return list(classes)
    return [known[i] if i < len(known) else pattern.format(i) for i in range(classes)]


def _write_lines(path: Path, lines: Sequence[str], trailing: str = "") -> None:
    """Official split files: CRLF endings, optionally a trailing space on each line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(f"{line}{trailing}\r\n" for line in lines).encode("utf-8"))


def ucf101_subset(group: int, split_id: int) -> str:
    """Official rule: split k tests groups 7(k-1)+1 .. 7k; groups 22-25 always train."""
    return "test" if 7 * (split_id - 1) < group <= 7 * split_id else "train"


def write_ucf101_tree(
    root: str | Path,
    classes: int | Sequence[str] = 3,
    groups: Sequence[int] = (1, 8, 15, 22),
    clips_per_group: int = 1,
    frames: FrameMaker | None = None,
    fps: int = 25,
    bit_rate: int | None = None,
) -> Corpus:
    """`root/UCF-101/<Class>/v_<Class>_gXX_cYY.avi` + `root/ucfTrainTestlist/` (classInd,
    trainlist01-03 with 1-based labels, testlist01-03), as in the official download."""
    root = Path(root)
    names = _class_names(classes, UCF101_CLASSES, "Action{:03d}")
    frames = frames or square_frames(num_classes=len(names))
    corpus = Corpus(root, names, splits={str(k): {"train": [], "test": [], "unused": []} for k in (1, 2, 3)})
    for class_index, name in enumerate(names):
        for group in groups:
            for clip in range(1, clips_per_group + 1):
                relative = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
                seed = len(corpus.videos)
                write_video(
                    root / "UCF-101" / relative, frames(class_index, seed), fps=fps, bit_rate=bit_rate
                )
                corpus.videos.append(relative)
                for k in (1, 2, 3):
                    corpus.splits[str(k)][ucf101_subset(group, k)].append(relative)
    lists = root / "ucfTrainTestlist"
    _write_lines(lists / "classInd.txt", [f"{i + 1} {name}" for i, name in enumerate(names)])
    label = {name: i + 1 for i, name in enumerate(names)}
    for k in (1, 2, 3):
        train = corpus.splits[str(k)]["train"]
        _write_lines(lists / f"trainlist0{k}.txt", [f"{p} {label[p.split('/')[0]]}" for p in train])
        _write_lines(lists / f"testlist0{k}.txt", corpus.splits[str(k)]["test"])
    return corpus


def hmdb51_tag(video_index: int, split_id: int, videos_per_class: int) -> int:
    """A rotating 1 = train / 2 = test / 0 = unused assignment (one test and, from 4 videos per
    class, one unused video per class and split; the rest train)."""
    slot = (video_index + split_id - 1) % videos_per_class
    if slot == 0:
        return 2
    return 0 if slot == 1 and videos_per_class >= 4 else 1


def write_hmdb51_tree(
    root: str | Path,
    classes: int | Sequence[str] = 3,
    videos_per_class: int = 4,
    subfolder: str | None = "hmdb51_org",
    frames: FrameMaker | None = None,
    fps: int = 30,
    bit_rate: int | None = None,
) -> Corpus:
    """`root/[subfolder/]<class>/<title>_<class>_u_nm_np1_fr_goo_N.avi` and
    `root/testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt` (`<video>.avi <tag> `, CRLF)."""
    root = Path(root)
    names = _class_names(classes, HMDB51_CLASSES, "action_{:02d}")
    frames = frames or square_frames(num_classes=len(names))
    video_root = root / subfolder if subfolder else root
    corpus = Corpus(
        video_root, names, splits={str(k): {"train": [], "test": [], "unused": []} for k in (1, 2, 3)}
    )
    tags = {"0": "unused", "1": "train", "2": "test"}
    for class_index, name in enumerate(names):
        lines: dict[int, list[str]] = {1: [], 2: [], 3: []}
        for i in range(videos_per_class):
            file_name = f"{HMDB51_TITLES[i % len(HMDB51_TITLES)]}_{name}_u_nm_np1_fr_goo_{i}.avi"
            relative = f"{name}/{file_name}"
            write_video(
                video_root / relative, frames(class_index, len(corpus.videos)), fps=fps, bit_rate=bit_rate
            )
            corpus.videos.append(relative)
            for k in (1, 2, 3):
                tag = hmdb51_tag(i, k, videos_per_class)
                lines[k].append(f"{file_name} {tag}")
                corpus.splits[str(k)][tags[str(tag)]].append(relative)
        for k in (1, 2, 3):
            _write_lines(root / "testTrainMulti_7030_splits" / f"{name}_test_split{k}.txt", lines[k], " ")
    corpus.root = root
    return corpus


def write_folder_tree(
    root: str | Path,
    classes: int | Sequence[str] | None = 2,
    videos_per_class: int = 2,
    suffixes: Sequence[str] = (".mp4", ".avi"),
    frames: FrameMaker | None = None,
    fps: int = 25,
    bit_rate: int | None = None,
) -> Corpus:
    """`root/<class>/clip_N.<suffix>` (or flat `root/clip_N.<suffix>` when classes is None),
    cycling through `suffixes` (H.264 MP4, MPEG-4 AVI, ...)."""
    root = Path(root)
    names = [] if classes is None else _class_names(classes, ("walk", "run", "jump"), "class_{:02d}")
    frames = frames or square_frames(num_classes=max(len(names), 1))
    corpus = Corpus(root, names)
    for class_index, name in enumerate(names or [None]):
        for i in range(videos_per_class):
            suffix = suffixes[(class_index + i) % len(suffixes)]
            relative = f"{name}/clip {i}{suffix}" if name else f"clip {i}{suffix}"
            write_video(root / relative, frames(class_index, len(corpus.videos)), fps=fps, bit_rate=bit_rate)
            corpus.videos.append(relative)
    return corpus


def write_corrupt_video(path: str | Path, kind: str, good_video: Path | None = None) -> Path:
    """A broken input: `zero-byte`, `truncated` (first 75% of a real video: header intact, frames missing) or `not-video` (text)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "zero-byte":
        path.write_bytes(b"")
    elif kind == "truncated":
        if good_video is None:
            good_video = write_video(path.with_suffix(".tmp" + path.suffix), moving_square_frames(24))
            data = good_video.read_bytes()
            good_video.unlink()
        else:
            data = Path(good_video).read_bytes()
        path.write_bytes(data[: int(len(data) * 0.75)])
    elif kind == "not-video":
        path.write_text("this is a text file, not a video\n")
    else:
        raise ValueError(f"corrupt kind {kind!r}; choose one of {CORRUPT_KINDS}")
    return path
