"""HMDB51 as distributed: `<class>/<video>.avi` (directly in INPUT or inside one subfolder such as
`hmdb51_org/`) and `testTrainMulti_7030_splits/<class>_test_split{1,2,3}.txt` whose lines are
`<video>.avi <tag>` with 1 = train, 2 = test, 0 = unused. Labels: classes in alphabetical order.
"""

from __future__ import annotations

import re
from pathlib import Path

from pretrain.data.shards.errors import LayoutError
from pretrain.data.shards.listing import (
    SPLIT_IDS,
    Listing,
    SkippedInput,
    SplitProblem,
    existing_dir,
    make_entry,
    read_lines,
    walk_files,
)

SPLIT_DIR = "testTrainMulti_7030_splits"
SPLIT_FILE = re.compile(r"^(?P<class_name>.+)_test_split(?P<split>[123])\.txt$")
TAGS = {"0": "unused", "1": "train", "2": "test"}


def list_hmdb51(input_dir: str | Path) -> Listing:
    root = existing_dir(input_dir)
    split_root = _find_split_dir(root)
    video_root = _find_video_root(root, split_root)
    problems: list[SplitProblem] = []
    videos: dict[str, dict] = {}
    skipped: list[SkippedInput] = []
    for relative in walk_files(video_root, lambda name: name.lower().endswith(".avi"), skipped):
        if relative.count("/") != 1:
            problems.append(
                SplitProblem(str(video_root / relative), 0, "not directly inside a class folder; skipped")
            )
            continue
        videos[relative] = {}
    classes = sorted({relative.split("/", 1)[0] for relative in videos})
    index = {name: i for i, name in enumerate(classes)}
    split_ids = _read_splits(split_root, index, videos, problems)
    entries = [
        make_entry(video_root, rel, index, class_name=rel.split("/", 1)[0], splits=splits)
        for rel, splits in videos.items()
    ]
    return Listing("hmdb51", classes, entries, problems, split_ids, skipped)


def _find_split_dir(root: Path) -> Path:
    for candidate in (root / SPLIT_DIR, root.parent / SPLIT_DIR, *root.glob(f"*/{SPLIT_DIR}")):
        if candidate.is_dir():
            return candidate
    raise LayoutError(
        f"{root}: expected the official HMDB51 split folder {SPLIT_DIR}/ "
        "holding <class>_test_split{1,2,3}.txt"
    )


def _holds_class_folders(directory: Path) -> bool:
    return any(child.is_dir() and any(child.glob("*.avi")) for child in directory.iterdir())


def _find_video_root(root: Path, split_root: Path) -> Path:
    """The class folders sit in INPUT itself or in exactly one of its subfolders."""
    if _holds_class_folders(root):
        return root
    candidates = [
        child
        for child in sorted(root.iterdir())
        if child.is_dir() and child != split_root and _holds_class_folders(child)
    ]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LayoutError(f"{root}: no class folders with .avi videos found (directly or one level down)")
    names = ", ".join(c.name for c in candidates)
    raise LayoutError(f"{root}: class folders found in several subfolders ({names}); pass one of them")


def _read_splits(
    split_root: Path, index: dict, videos: dict, problems: list[SplitProblem]
) -> tuple[str, ...]:
    by_class = {}
    for relative in videos:
        class_name, name = relative.split("/", 1)
        by_class.setdefault(class_name, {})[name] = relative
    seen_splits, covered = set(), set()
    for path in sorted(split_root.iterdir()):
        match = SPLIT_FILE.match(path.name)
        if not match:
            continue
        class_name, split_id = match["class_name"], match["split"]
        if class_name not in index:
            problems.append(
                SplitProblem(str(path), 0, f"unknown class {class_name!r} (no such class folder)")
            )
            continue
        seen_splits.add(split_id)
        covered.add(class_name)
        for number, line in enumerate(read_lines(path), start=1):
            if line.strip():
                _assign(path, number, line, split_id, by_class[class_name], videos, problems)
    for split_id in seen_splits:
        for splits in videos.values():
            splits.setdefault(split_id, "unused")
    for class_name in sorted(set(index) - covered):
        problems.append(
            SplitProblem(
                str(split_root),
                0,
                f"no split files for class {class_name!r}: its videos are unused in every split",
            )
        )
    for split_id in SPLIT_IDS:
        if split_id not in seen_splits:
            problems.append(SplitProblem(str(split_root), 0, f"no split {split_id} files found"))
    return tuple(sorted(seen_splits))


def _assign(
    path: Path,
    number: int,
    line: str,
    split_id: str,
    class_videos: dict,
    videos: dict,
    problems: list[SplitProblem],
) -> None:
    fields = line.strip().rsplit(None, 1)
    if len(fields) != 2 or fields[1] not in TAGS:
        problems.append(SplitProblem(str(path), number, f"expected '<video>.avi <0|1|2>', got {line!r}"))
        return
    name, tag = fields
    relative = class_videos.get(name)
    if relative is None:
        problems.append(SplitProblem(str(path), number, f"names a missing video {name!r}"))
        return
    videos[relative][split_id] = TAGS[tag]
