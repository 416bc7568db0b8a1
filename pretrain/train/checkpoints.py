"""Atomic, resumable checkpoints: every N steps, at the end, and on SIGTERM / SIGUSR1.

Layout of a run directory:

    RUN/checkpoints/step-00000050/        one committed checkpoint
        state/                            DeepSpeed: latest, checkpoint/*.pt (shards), zero_to_fp32.py
        state.ckpt                        ...or a Lightning checkpoint file (DDP / single device)
        config.yaml                       the resolved run config
        meta.json                         step, epoch, reason, version, strategy, files and sizes
    RUN/checkpoints/last -> step-00000050 symlink to the newest committed checkpoint
    RUN/checkpoints/.tmp-step-00000100/   a save in progress (never read)

A save writes into `.tmp-step-N/`, writes `meta.json` last, then renames the folder into place,
so a kill at any moment leaves the previous checkpoints as they were. A checkpoint is valid when
its `meta.json` parses and every file it lists exists with the listed size; `resume=auto` takes
the newest valid one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pretrain import __version__ as TUBELET_VERSION
from pretrain.config import RunConfig, config_to_yaml
from pretrain.errors import CheckpointError  # re-exported: no usable checkpoint where one was asked for

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
DEEPSPEED_STATE = "state"  # a folder
LIGHTNING_STATE = "state.ckpt"  # a file
META = "meta.json"
CONFIG = "config.yaml"
LAST = "last"
TMP_PREFIX = ".tmp-"
STEP_DIR = re.compile(r"^step-(\d{8})$")


def step_dir_name(step: int) -> str:
    return f"step-{step:08d}"


@dataclass(frozen=True)
class Checkpoint:
    """A committed checkpoint folder and what its meta.json says."""

    path: Path
    meta: dict

    @property
    def step(self) -> int:
        return int(self.meta["step"])

    @property
    def state_path(self) -> Path:
        """What Lightning's `ckpt_path` takes: the DeepSpeed folder or the Lightning file."""
        return self.path / (DEEPSPEED_STATE if self.meta.get("deepspeed") else LIGHTNING_STATE)


def read_checkpoint(path: str | Path) -> Checkpoint:
    """A committed checkpoint folder (or its `state`/`state.ckpt`, or `last`), validated."""
    path = Path(path)
    if path.name in (DEEPSPEED_STATE, LIGHTNING_STATE) and (path.parent / META).is_file():
        path = path.parent
    path = path.resolve()
    problem = checkpoint_problem(path)
    if problem:
        raise CheckpointError(f"{path} is not a usable checkpoint: {problem}")
    return Checkpoint(path, json.loads((path / META).read_text()))


def checkpoint_problem(path: Path) -> Optional[str]:
    """Why `path` is not a complete checkpoint, or None when it is."""
    meta_path = path / META
    if not meta_path.is_file():
        return f"{META} is missing (an interrupted save?)"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        return f"{META} is unreadable: {error}"
    for name, size in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, expected {size}"
    return None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Committed step folders of a run, newest first (validity not checked)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and STEP_DIR.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_DIR.match(p.name).group(1)), reverse=True)


def latest_valid_checkpoint(run_dir: str | Path) -> Optional[Checkpoint]:
    """The newest checkpoint whose files are complete; broken ones are logged and passed over."""
    for path in list_checkpoints(run_dir):
        problem = checkpoint_problem(path)
        if problem is None:
            return Checkpoint(path, json.loads((path / META).read_text()))
        log.warning("skipping checkpoint %s: %s", path, problem)
    return None


def resolve_resume(resume: str, run_dir: Path) -> Optional[Checkpoint]:
    """`trainer.resume`: none → None; auto → newest valid or None; otherwise that checkpoint."""
    if resume == "none":
        return None
    if resume == "auto":
        found = latest_valid_checkpoint(run_dir)
        if found is None:
            log.info("resume=auto: no checkpoint under %s; starting fresh", run_dir / CHECKPOINTS_DIR)
        return found
    return read_checkpoint(resume)


# ---------------------------------------------------------------- writing


def tmp_dir_for(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS_DIR / f"{TMP_PREFIX}{step_dir_name(step)}"


def prepare_tmp(tmp: Path) -> None:
    """Rank zero: an empty temporary folder (a leftover from a killed save is discarded)."""
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)


def commit(tmp: Path, meta: dict, config: RunConfig, keep_last: int) -> Path:
    """Rank zero, after every rank wrote its part: config + meta (listing sizes), then rename."""
    (tmp / CONFIG).write_text(config_to_yaml(config))
    files = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
    meta = {**meta, "version": TUBELET_VERSION, "files": files}
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
    link = final.parent / LAST
    tmp_link = final.parent / f"{TMP_PREFIX}{LAST}"
    if tmp_link.is_symlink() or tmp_link.exists():
        tmp_link.unlink()
    tmp_link.symlink_to(final.name)
    os.replace(tmp_link, link)


def _prune(root: Path, keep_last: int) -> None:
    """Drop all but the newest `keep_last` committed checkpoints (0 keeps everything)."""
    if keep_last <= 0:
        return
    for old in list_checkpoints(root.parent)[keep_last:]:
        shutil.rmtree(old, ignore_errors=True)


def checkpoint_meta(step: int, epoch: int, reason: str, strategy: dict[str, Any], world_size: int) -> dict:
    return {"step": step, "epoch": epoch, "reason": reason, "world_size": world_size, **strategy}
