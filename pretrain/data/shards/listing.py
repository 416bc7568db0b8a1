"""What a corpus holds: the videos of a source directory, their classes and split membership; the
folder corpus itself. The layouts with official lists (`ucf101`, `hmdb51`, `annotations`) build on
these types, and `sources.list_source` picks one by name.

A `Listing` is made by walking the directory tree (never by joining paths read from split files:
split-file lines are only matched against the walked tree). Problems found in split files or the
class index are collected as `SplitProblem`s naming the file and line; they are reported, not fatal
(unless the build is strict), because users legitimately build subsets.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pretrain.data.shards.errors import LayoutError
from pretrain.data.shards.keys import key_for_path
from pretrain.data.shards.spans import Span, span_key

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv")
SPLIT_IDS = ("1", "2", "3")


@dataclass(frozen=True)
class VideoEntry:
    """One input video. `path` is relative (POSIX) and is what the shard's `.json` records."""

    path: str
    file: str
    size: int
    label: int | None = None
    class_name: str | None = None
    splits: dict = field(default_factory=dict)
    """Official split id -> "train" / "test" / "unused"; empty for folder corpora."""
    span: Span | None = None
    """A part of the video (segment, shot, annotation) that is its own sample; None: the whole file."""

    @property
    def key(self) -> str:
        return span_key(self.path, self.span) if self.span else key_for_path(self.path)

    @property
    def split(self) -> str:
        """The split-1 assignment (the `split` field of the sample json), or "all"."""
        return self.splits.get("1", "all")


@dataclass(frozen=True)
class SplitProblem:
    """A line of a split file or class index that could not be used, or a stray input."""

    file: str
    line: int
    reason: str

    def describe(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class SkippedInput:
    """A directory entry that cannot be read as a video: a dangling symlink, a symlink loop, a
    name that is not valid UTF-8. Reported like an unreadable video (errors.jsonl), not fatal."""

    path: str
    """Relative path, printable (undecodable bytes shown as `\\xff`)."""
    file: str
    reason: str

    def row(self) -> dict:
        return {"kind": "video", "path": self.path, "file": self.file, "reason": self.reason}


@dataclass
class Listing:
    dataset: str
    classes: list[str]
    entries: list[VideoEntry]
    problems: list[SplitProblem] = field(default_factory=list)
    split_ids: tuple[str, ...] = ()
    skipped: list[SkippedInput] = field(default_factory=list)


def is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_SUFFIXES) and not name.startswith(".")


def walk_files(
    root: Path, accept: Callable[[str], bool] = is_video_name, skipped: list[SkippedInput] | None = None
) -> Iterator[str]:
    """Relative POSIX paths of accepted files under `root`, sorted, skipping hidden directories.
    Accepted entries that cannot be read (see `SkippedInput`) go to `skipped` instead."""
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        relative_dir = Path(directory).relative_to(root).as_posix()
        for name in sorted(files):
            if not accept(name):
                continue
            relative = name if relative_dir == "." else f"{relative_dir}/{name}"
            reason = unusable_reason(root / relative, relative)
            if reason is None:
                yield relative
                continue
            bad = SkippedInput(printable(relative), printable(str(root / relative)), reason)
            log.warning("skipping %s: %s", bad.file, reason)
            if skipped is not None:
                skipped.append(bad)


def printable(path: str) -> str:
    """A path from the file system with undecodable bytes written as `\\xff` escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def unusable_reason(file: Path, relative: str) -> str | None:
    """Why a directory entry cannot become a sample, or None if it can be read."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    try:
        mode = file.stat().st_mode
    except FileNotFoundError:
        if file.is_symlink():
            return f"unreadable (dangling symlink to {printable(os.readlink(file))})"
        return "unreadable (vanished while listing)"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "unreadable (symlink loop)"
        return f"unreadable ({error.strerror})"
    return special_file_reason(mode)


SPECIAL_FILES = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a directory",
}


def special_file_reason(mode: int) -> str | None:
    """Only regular files are videos: a FIFO would block the reader forever and a symlink to
    /dev/zero would be read until memory runs out."""
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file ({SPECIAL_FILES.get(stat.S_IFMT(mode), 'a special file')})"


def regular_file_problem(path: str | Path) -> str | None:
    """Why `path` (a video named on the command line) cannot be read, or None for a regular file."""
    try:
        return special_file_reason(os.stat(path).st_mode)
    except FileNotFoundError:
        return "no such file"
    except OSError as error:
        return f"unreadable ({error.strerror})"


def normalize_listed_path(text: str) -> str | None:
    """A split-file path as a clean relative POSIX path, or None if it escapes the tree."""
    path = posixpath.normpath(text.replace("\\", "/"))
    if path.startswith("/") or path == ".." or path.startswith("../") or path == ".":
        return None
    return path


def read_lines(path: Path) -> list[str]:
    """Lines of an official text file with CRLF/LF endings and trailing spaces removed."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    return [line.rstrip() for line in raw.splitlines()]


def make_entry(root: Path, relative: str, classes: dict | None = None, **fields) -> VideoEntry:
    file = root / relative
    class_name = fields.pop("class_name", None)
    label = classes.get(class_name) if classes is not None and class_name is not None else None
    return VideoEntry(
        path=relative, file=str(file), size=file.stat().st_size, label=label, class_name=class_name, **fields
    )


def list_folder(input_dir: str | Path, labels_from_folders: bool = False, dataset: str = "folder") -> Listing:
    """Every video under `input_dir`; labeled by first-level subfolder if asked."""
    root = existing_dir(input_dir)
    skipped: list[SkippedInput] = []
    paths = list(walk_files(root, skipped=skipped))
    if not paths:
        raise LayoutError(f"{root}: no video files ({', '.join(VIDEO_SUFFIXES)}) found")
    if not labels_from_folders:
        return Listing(dataset, [], [make_entry(root, p) for p in paths], skipped=skipped)
    problems = [
        SplitProblem(str(root / p), 0, "not inside a class folder; skipped") for p in paths if "/" not in p
    ]
    labeled = [p for p in paths if "/" in p]
    classes = sorted({p.split("/", 1)[0] for p in labeled})
    index = {name: i for i, name in enumerate(classes)}
    entries = [make_entry(root, p, index, class_name=p.split("/", 1)[0]) for p in labeled]
    return Listing(dataset, classes, entries, problems, skipped=skipped)


def existing_dir(path: str | Path) -> Path:
    root = Path(path).expanduser()
    if not root.is_dir():
        raise LayoutError(f"{root}: not a directory")
    return root.resolve()
