"""Files that appear whole or not at all: write under a temporary name beside the final one, then
rename onto it (`os.replace` is atomic within a folder), so a crash or a failed write never leaves a
half file where a reader (a resumed run, `tubelet export`, a feature extraction) would trust it.

`folder_replaced_atomically` does the same for a whole folder (an export: weights, config and the
rest appear together, or the old folder stays). The one way the package writes a local file
atomically; only the checkpoint folder commit (ranks
write into `.tmp-step-N/`, rank zero renames it, `pretrain.weights.commit`) and shards on any
fsspec filesystem (`pretrain.data.shards.store`) have their own protocol.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


def partial_path(final: Path) -> Path:
    """The temporary name of `final`: hidden, in the same folder (`.model.safetensors.partial`)."""
    return final.with_name(f".{final.name}{PARTIAL_SUFFIX}")


@contextmanager
def replaced_atomically(*finals: str | Path) -> Iterator[tuple[Path, ...]]:
    """Yield a temporary path per final path; if the block succeeds, rename each onto its final
    path (in order), else remove them. A stale temporary file from a crash is removed first.

        with replaced_atomically(folder / "run.json") as (tmp,):
            tmp.write_text(text)
    """
    pairs = [(partial_path(Path(final)), Path(final)) for final in finals]
    for tmp, _ in pairs:
        _remove(tmp)
    try:
        yield tuple(tmp for tmp, _ in pairs)
        for tmp, final in pairs:
            os.replace(tmp, final)
    finally:
        for tmp, _ in pairs:
            _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_symlink() or path.exists():
        path.unlink()


@contextmanager
def folder_replaced_atomically(final: str | Path, on_existing: Callable[[Path], None]) -> Iterator[Path]:
    """Yield a temporary folder beside `final`; if the block succeeds it becomes `final` by rename,
    so a reader sees the old folder or the new one, never new files beside old ones. A non-empty
    `final` is first shown to `on_existing` (which may refuse by raising), then swapped out and
    removed; a crash between the two renames leaves it as `.<name>.old` beside the new folder."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = final.with_name(f".{final.name}{PARTIAL_SUFFIX}"), final.with_name(f".{final.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        if final.is_dir() and any(final.iterdir()):
            on_existing(final)
            shutil.rmtree(old, ignore_errors=True)
            os.rename(final, old)
        os.replace(tmp, final)  # onto a missing or empty folder
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
