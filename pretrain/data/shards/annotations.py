"""Annotation lists over untrimmed videos: each listed span (`video, start, end, label[, split]`)
becomes a labelled sample, cut exactly from its video when the shards are written.

Two formats:

- Kinetics (`--annotations train.csv --annotations validate.csv`, source `kinetics`): the official
  CSVs, header `label,youtube_id,time_start,time_end,split` (test lists may lack `label`). A row
  matches either the mirror's already-trimmed clip `<youtube_id>_<start:06d>_<end:06d>.<ext>` (kept
  whole, as downloaded) or a full-length download `<youtube_id>.<ext>` (the span is cut out),
  anywhere under INPUT. Splits: train -> split 1 "train", val/validate -> "test" (what papers
  report), test -> "unused".
- Generic (source `annotations`): a CSV with the header `video,start,end,label[,split]`; `video` is
  a path relative to INPUT or a file name without its extension; `split` is train/test/unused
  (val counts as test); without it every span is in split "all".

Videos are found by walking INPUT, never by joining paths read from the CSV. Rows whose video is
missing are listed as problems (errors.jsonl, the log), not fatal; so are unreadable rows and
repeated spans. Classes are the sorted label names of every row, present or not, so class
indices do not depend on which videos a mirror still has.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pretrain.data.shards.errors import LayoutError
from pretrain.data.shards.listing import (
    Listing,
    SplitProblem,
    VideoEntry,
    existing_dir,
    make_entry,
    normalize_listed_path,
    walk_files,
)
from pretrain.data.shards.spans import Span

log = logging.getLogger(__name__)

KINETICS_COLUMNS = ("youtube_id", "time_start", "time_end")
GENERIC_COLUMNS = ("video", "start", "end", "label")
SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "test",
    "validate": "test",
    "validation": "test",
    "test": "test",
    "unused": "unused",
}
KINETICS_SPLITS = {**SPLIT_NAMES, "test": "unused"}


@dataclass(frozen=True)
class Annotation:
    where: str
    """`file:line` of the row."""
    video: str
    start: float
    end: float
    label: str | None
    split: str | None


def _rows(path: Path, required: Sequence[str]) -> list[tuple[int, dict]]:
    """(line number, row with stripped values) of a CSV with the `required` header names."""
    if not path.is_file():
        raise LayoutError(f"{path}: annotation list not found")
    # undecodable bytes survive as surrogates: that row becomes a problem, not a traceback
    with path.open(newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in required if name not in header]
        if missing:
            raise LayoutError(f"{path}: header {','.join(header) or '(empty)'} lacks {', '.join(missing)}")
        reader.fieldnames = header
        rows = [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
        return [(line + 2, row) for line, row in enumerate(rows)]  # line 1 is the header


def read_annotations(path: str | Path, kinetics: bool) -> tuple[list[Annotation], list[SplitProblem]]:
    """The rows of one list; unreadable rows as problems."""
    path = Path(path)
    rows, problems = _rows(path, KINETICS_COLUMNS if kinetics else GENERIC_COLUMNS), []
    names = ("youtube_id", "time_start", "time_end") if kinetics else ("video", "start", "end")
    splits = KINETICS_SPLITS if kinetics else SPLIT_NAMES
    found = []
    for line, row in rows:
        where = f"{path}:{line}"
        if any(_undecodable(value) for value in row.values()):
            problems.append(SplitProblem(str(path), line, "row is not valid UTF-8"))
            continue
        try:
            start, end = float(row[names[1]]), float(row[names[2]])
        except ValueError:
            start = end = math.nan
        if not (math.isfinite(start) and math.isfinite(end)):  # float() also reads nan and inf
            reason = f"start/end {row[names[1]]!r}, {row[names[2]]!r} are not finite numbers"
            problems.append(SplitProblem(str(path), line, reason))
            continue
        split = row.get("split") or None
        if not row[names[0]] or end <= start or start < 0 or (split and split.lower() not in splits):
            problems.append(SplitProblem(str(path), line, f"unusable row {row}"))
            continue
        found.append(
            Annotation(
                where,
                row[names[0]],
                start,
                end,
                row.get("label") or None,
                splits[split.lower()] if split else None,
            )
        )
    return found, problems


def _undecodable(value: str | None) -> bool:
    return value is not None and any("\udc80" <= char <= "\udcff" for char in value)


def _stems(paths: Sequence[str]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for path in paths:
        index.setdefault(PurePosixPath(path).stem, []).append(path)
    return index


def trimmed_name(youtube_id: str, start: float, end: float) -> str:
    """The CVDF mirror's clip name (without extension)."""
    return f"{youtube_id}_{int(round(start)):06d}_{int(round(end)):06d}"


def _match(
    note: Annotation, paths: set[str], stems: dict[str, list[str]], kinetics: bool
) -> tuple[str | None, bool, str]:
    """(relative path or None, whether it is the whole span already, reason when not found)."""
    if kinetics:
        trimmed = stems.get(trimmed_name(note.video, note.start, note.end))
        if trimmed:
            return trimmed[0], True, ""
        full = stems.get(note.video)
        if full:
            return full[0], False, ""
        trimmed_stem = trimmed_name(note.video, note.start, note.end)
        return None, False, f"video {note.video} not found (neither {trimmed_stem}.* nor {note.video}.*)"
    listed = normalize_listed_path(note.video)
    if listed in paths:
        return listed, False, ""
    candidates = stems.get(note.video, [])
    if len(candidates) == 1:
        return candidates[0], False, ""
    reason = (
        f"{len(candidates)} videos named {note.video}.*" if candidates else f"video {note.video} not found"
    )
    return None, False, reason


def list_annotations(
    input_dir: str | Path, lists: Sequence[str | Path], kinetics: bool, dataset: str | None = None
) -> Listing:
    """The annotated spans of `lists` over the videos under `input_dir`."""
    if not lists:
        raise LayoutError("an annotation source needs --annotations FILE.csv (one or more)")
    root = existing_dir(input_dir)
    notes, problems = [], []
    for path in lists:
        rows, bad = read_annotations(path, kinetics)
        notes += rows
        problems += bad
    classes = sorted({note.label for note in notes if note.label})
    index = {name: i for i, name in enumerate(classes)}
    skipped: list = []
    paths = list(walk_files(root, skipped=skipped))
    known, stems = set(paths), _stems(paths)
    entries, seen, has_splits = [], set(), any(note.split for note in notes)
    for row, note in enumerate(notes):
        relative, whole, reason = _match(note, known, stems, kinetics)
        file, _, line = note.where.rpartition(":")
        if relative is None:
            problems.append(SplitProblem(file, int(line), reason))
            continue
        splits = {"1": note.split or "unused"} if has_splits else {}
        span = None if whole else Span(note.start, note.end, row, exact=True, kind="annotation")
        entry = make_entry(root, relative, index, class_name=note.label, splits=splits, span=span)
        if entry.key in seen:
            reason = f"{relative} {note.start}-{note.end} s is listed twice; kept the first"
            problems.append(SplitProblem(file, int(line), reason))
            continue
        seen.add(entry.key)
        entries.append(entry)
    missing = sum(1 for p in problems if "not found" in p.reason)
    log.info(
        "%d annotated spans: %d found (%d already trimmed), %d videos missing",
        len(notes),
        len(entries),
        sum(1 for e in entries if e.span is None),
        missing,
    )
    name = dataset or ("kinetics400" if kinetics else "annotations")
    sized = _sized(entries, problems)
    return Listing(name, classes, sized, problems, ("1",) if has_splits else (), skipped=skipped)


def _sized(entries: list[VideoEntry], problems: list[SplitProblem]) -> list[VideoEntry]:
    """Spans weigh their share of the video's bytes in the shard plan (from the container's duration).
    A span past the video's end is clipped to it (its key and json say the real end); one that starts
    after the end is a problem."""
    import dataclasses

    import av

    durations: dict[str, float] = {}
    sized: list[VideoEntry] = []
    keys: set[str] = set()
    for entry in entries:
        if entry.span is None:
            sized.append(entry)
            continue
        if entry.file not in durations:
            try:
                with av.open(entry.file) as container:
                    durations[entry.file] = (container.duration or 0) / 1e6
            except (av.FFmpegError, ValueError):
                durations[entry.file] = 0.0  # the writer reports the unreadable file
        total, span = durations[entry.file], entry.span
        if total > 0 and span.end > total:
            if span.start >= total:
                reason = f"{entry.path} {span.start}-{span.end} s starts after the video's end ({total:g} s)"
                problems.append(SplitProblem(entry.file, 0, reason))
                continue
            span = dataclasses.replace(span, end=total)
        share = min(1.0, span.duration / total) if total > 0 else 1.0
        clipped = dataclasses.replace(entry, span=span, size=max(1, int(entry.size * share)))
        if clipped.key in keys:  # two rows that differ only past the end
            problems.append(
                SplitProblem(entry.file, 0, f"{entry.path} {span.start}-{span.end} s is listed twice")
            )
            continue
        keys.add(clipped.key)
        sized.append(clipped)
    return sized
