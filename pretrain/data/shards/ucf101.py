"""UCF101 as distributed: `UCF-101/<Class>/v_<Class>_gXX_cYY.avi` and `ucfTrainTestlist/`.

`classInd.txt` lines are `1 ApplyEyeMakeup` (1-based); shards use 0-based labels (index - 1).
`trainlist0N.txt` lines are `Class/v_Class_g08_c01.avi 1`, `testlist0N.txt` lines the path only.
"""

from __future__ import annotations

from pathlib import Path

from pretrain.data.shards.errors import LayoutError
from pretrain.data.shards.listing import (
    SPLIT_IDS,
    Listing,
    SkippedInput,
    SplitProblem,
    existing_dir,
    make_entry,
    normalize_listed_path,
    read_lines,
    walk_files,
)

VIDEO_DIR = "UCF-101"
LIST_DIR = "ucfTrainTestlist"


def list_ucf101(input_dir: str | Path) -> Listing:
    root = existing_dir(input_dir)
    video_root, list_root = _find_dirs(root)
    problems: list[SplitProblem] = []
    classes = _read_class_index(list_root / "classInd.txt", problems)
    index = {name: i for i, name in enumerate(classes)}
    videos = {}
    skipped: list[SkippedInput] = []
    for relative in walk_files(video_root, lambda name: name.lower().endswith(".avi"), skipped):
        class_name = relative.split("/", 1)[0] if "/" in relative else None
        if class_name not in index:
            problems.append(
                SplitProblem(
                    str(video_root / relative),
                    0,
                    f"class folder {class_name!r} is not in classInd.txt; skipped",
                )
            )
            continue
        videos[relative] = {}
    split_ids = []
    for split_id in SPLIT_IDS:
        if _read_split(list_root, split_id, index, videos, problems):
            split_ids.append(split_id)
    entries = [
        make_entry(video_root, rel, index, class_name=rel.split("/", 1)[0], splits=splits)
        for rel, splits in videos.items()
    ]
    return Listing("ucf101", classes, entries, problems, tuple(split_ids), skipped)


def _find_dirs(root: Path) -> tuple[Path, Path]:
    """INPUT holds UCF-101/ and ucfTrainTestlist/ (or is UCF-101/ with the lists beside it)."""
    for base in (root, root.parent):
        video_root, list_root = base / VIDEO_DIR, base / LIST_DIR
        if video_root.is_dir() and list_root.is_dir():
            return video_root, list_root
    raise LayoutError(
        f"{root}: expected the official UCF101 layout: {VIDEO_DIR}/<Class>/v_*.avi and "
        f"{LIST_DIR}/classInd.txt, trainlist01-03.txt, testlist01-03.txt"
    )


def _read_class_index(path: Path, problems: list[SplitProblem]) -> list[str]:
    if not path.is_file():
        raise LayoutError(f"{path}: missing (the class index is required)")
    numbered: dict[int, str] = {}
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or not fields[0].isdigit():
            problems.append(SplitProblem(str(path), number, f"expected '<index> <Class>', got {line!r}"))
            continue
        numbered[int(fields[0])] = fields[1]
    if sorted(numbered) != list(range(1, len(numbered) + 1)):
        raise LayoutError(f"{path}: class indices must run 1..{len(numbered)} without gaps")
    return [numbered[i] for i in sorted(numbered)]


def _read_split(
    list_root: Path, split_id: str, index: dict, videos: dict, problems: list[SplitProblem]
) -> bool:
    """Mark each video of split `split_id` train/test; videos in neither list are 'unused'."""
    found = False
    for subset in ("train", "test"):
        path = list_root / f"{subset}list0{split_id}.txt"
        if not path.is_file():
            problems.append(SplitProblem(str(path), 0, "split file missing"))
            continue
        found = True
        for number, line in enumerate(read_lines(path), start=1):
            if line.strip():
                _assign(path, number, line, subset, split_id, index, videos, problems)
    if found:
        for splits in videos.values():
            splits.setdefault(split_id, "unused")
    return found


def _assign(
    path: Path,
    number: int,
    line: str,
    subset: str,
    split_id: str,
    index: dict,
    videos: dict,
    problems: list[SplitProblem],
) -> None:
    fields = line.strip().rsplit(None, 1)
    label: str | None = None
    if len(fields) == 2 and fields[1].isdigit():  # trainlists carry a label; tolerate it in testlists
        listed, label = fields
    else:
        listed = line.strip()
    relative = normalize_listed_path(listed)

    def report(reason: str) -> None:
        problems.append(SplitProblem(str(path), number, reason))

    if relative is None or "/" not in relative:
        return report(f"{listed!r} is not a '<Class>/<video>.avi' path inside {VIDEO_DIR}/")
    class_name = relative.split("/", 1)[0]
    if class_name not in index:
        return report(f"unknown class {class_name!r} (not in classInd.txt)")
    if label is not None and int(label) != index[class_name] + 1:
        report(f"label {label} disagrees with classInd.txt ({class_name} is {index[class_name] + 1})")
    if relative not in videos:
        return report(f"names a missing video {relative!r}")
    previous = videos[relative].get(split_id)
    if previous is not None and previous != subset:
        return report(f"{relative!r} is listed in both train and test of split {split_id}")
    videos[relative][split_id] = subset
