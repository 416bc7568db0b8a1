"""The run folder's checkpoint layout, write side: a save is atomic and records what a reader checks.

A save writes into `.tmp-step-N/`, then `meta.json` (the size and sha256 of every file) last,
then renames the folder into place, so a kill at any moment leaves the previous checkpoints as
they were. The Lightning callback that decides when to save (`pretrain.train.checkpoint_callback`)
calls these; `pretrain.weights.layout` reads what they write.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from pretrain import __version__ as TUBELET_VERSION
from pretrain.atomic import replaced_atomically
from pretrain.config import RunConfig, config_to_yaml
from pretrain.weights.layout import (
    CHECKPOINTS_DIR,
    CONFIG,
    DEEPSPEED_STATE,
    LAST,
    LIGHTNING_STATE,
    META,
    TMP_PREFIX,
    list_checkpoints,
    sha256_of,
    step_dir_name,
)

# The writer's vocabulary: where each strategy's state goes, and the folder names.
__all__ = [
    "DEEPSPEED_STATE",
    "LIGHTNING_STATE",
    "step_dir_name",
    "tmp_dir_for",
    "prepare_tmp",
    "commit",
    "checkpoint_meta",
]

log = logging.getLogger(__name__)


def tmp_dir_for(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS_DIR / f"{TMP_PREFIX}{step_dir_name(step)}"


def prepare_tmp(tmp: Path) -> None:
    """Rank zero: an empty temporary folder (a leftover from a killed save is discarded)."""
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)


def commit(tmp: Path, meta: dict, config: RunConfig, keep_last: int) -> Path:
    """Rank zero, after every rank wrote its part: config + meta (sizes, sha256), then rename."""
    (tmp / CONFIG).write_text(config_to_yaml(config))
    files = [p for p in sorted(tmp.rglob("*")) if p.is_file()]
    meta = {
        **meta,
        "version": TUBELET_VERSION,
        "files": {str(p.relative_to(tmp)): p.stat().st_size for p in files},
        "sha256": {str(p.relative_to(tmp)): sha256_of(p) for p in files},
    }
    _write_synced(tmp / META, json.dumps(meta, indent=2, sort_keys=True))
    final = tmp.parent / step_dir_name(int(meta["step"]))
    if final.exists():  # same step saved before (e.g. a signal right after a periodic save)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    _point_last(final)
    _prune(final.parent, keep_last)
    log.info("checkpoint saved: %s (%s)", final, meta.get("reason"))
    return final


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _point_last(final: Path) -> None:
    with replaced_atomically(final.parent / LAST) as (tmp_link,):
        tmp_link.symlink_to(final.name)


def _prune(root: Path, keep_last: int) -> None:
    """Drop all but the newest `keep_last` committed checkpoints (0 keeps everything)."""
    if keep_last <= 0:
        return
    for old in list_checkpoints(root.parent)[keep_last:]:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_meta(step: int, epoch: int, reason: str, strategy: dict[str, Any], world_size: int) -> dict:
    return {"step": step, "epoch": epoch, "reason": reason, "world_size": world_size, **strategy}
