"""The run folder's checkpoint layout, read side: which checkpoints exist, which are whole, which to resume.

    RUN/checkpoints/step-00000050/        one committed checkpoint
        state/                            DeepSpeed: latest, checkpoint/*.pt (shards), zero_to_fp32.py
        state.ckpt                        ...or a Lightning checkpoint file (DDP / single device)
        config.yaml                       the resolved run config
        meta.json                         step, epoch, reason, version, strategy, files: sizes and sha256
    RUN/checkpoints/last -> step-00000050 symlink to the newest committed checkpoint
    RUN/checkpoints/.tmp-step-00000100/   a save in progress (never read)

A checkpoint is whole when its `meta.json` parses and every file it lists exists with the listed
size; `verify=True` also compares each file's sha256 with the one recorded at save time (flipped
bytes of the same size). Resume, export and init verify; `resume=auto` takes the newest whole one
and names every newer one it passes over. The writing side is `pretrain.weights.commit`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pretrain.errors import CheckpointError

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
DEEPSPEED_STATE = "state"  # a folder
LIGHTNING_STATE = "state.ckpt"  # a file
META = "meta.json"
CONFIG = "config.yaml"
LAST = "last"
TMP_PREFIX = ".tmp-"
STEP_DIR = re.compile(r"^step-(\d{8})$")
HASH_CHUNK = 1 << 20

__all__ = [
    "CheckpointError",
    "Checkpoint",
    "read_checkpoint",
    "find_checkpoint",
    "checkpoint_problem",
    "list_checkpoints",
    "latest_valid_checkpoint",
    "resolve_resume",
    "is_stage_checkpoint",
]


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
    def deepspeed(self) -> bool:
        return bool(self.meta.get("deepspeed"))

    @property
    def state_path(self) -> Path:
        """What Lightning's `ckpt_path` takes: the DeepSpeed folder or the Lightning file."""
        return self.path / (DEEPSPEED_STATE if self.deepspeed else LIGHTNING_STATE)

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_problem(path: Path, verify: bool = False) -> str | None:
    """Why `path` is not a whole checkpoint, or None when it is (`verify`: checksums too)."""
    meta_path = path / META
    if not meta_path.is_file():
        return f"{META} is missing (an interrupted save?)"
    try:
        meta = json.loads(meta_path.read_text())
        files, sums = dict(meta.get("files", {})), dict(meta.get("sha256", {}))
    except (OSError, ValueError, TypeError, AttributeError, RecursionError) as error:
        return f"{META} is unreadable: {type(error).__name__ if isinstance(error, RecursionError) else error}"
    for name, size in files.items():
        outside = outside_problem(path, name)
        if outside:  # never stat, hash or describe a file the checkpoint does not hold
            return outside
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, expected {size}"
        if verify and name in sums and sha256_of(file) != sums[name]:
            return f"{name} does not match the sha256 recorded when it was saved (corrupt or altered)"
    return None


def outside_problem(folder: Path, name: object) -> str | None:
    """Why `name` (from the checkpoint's own meta.json) is not a plain file inside `folder`, or None."""
    if (
        not isinstance(name, str)
        or not name
        or PurePosixPath(name).is_absolute()
        or ".." in PurePosixPath(name).parts
    ):
        return f"{META} names {str(name)[:80]!r}, not a file inside the checkpoint folder"
    file = folder / name
    if not file.resolve().is_relative_to(folder.resolve()) or (file.exists() and not file.is_file()):
        return (
            f"{name} is not a plain file inside the checkpoint folder (a link out of it, or a special file)"
        )
    return None


def _load_meta(path: Path) -> dict:
    return json.loads((path / META).read_text())


def read_checkpoint(path: str | Path, verify: bool = True) -> Checkpoint:
    """A committed checkpoint folder (or its `state`/`state.ckpt`, or `last`), validated."""
    path = Path(path)
    if path.name in (DEEPSPEED_STATE, LIGHTNING_STATE) and (path.parent / META).is_file():
        path = path.parent
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    path = path.resolve()
    problem = checkpoint_problem(path, verify=verify)
    if problem:
        raise CheckpointError(f"{path} is not a usable checkpoint: {problem}")
    return Checkpoint(path, _load_meta(path))


def is_stage_checkpoint(path: Path) -> bool:
    """A checkpoint folder (or `last`), its state inside, or a run folder with checkpoints."""
    if (path / META).is_file() or (path / CHECKPOINTS_DIR).is_dir():
        return True
    return path.name in (DEEPSPEED_STATE, LIGHTNING_STATE) and (path.parent / META).is_file()


def find_checkpoint(path: str | Path, verify: bool = True) -> Checkpoint:
    """A checkpoint folder, its state, `last`, or a run folder (its newest valid checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if (path / CHECKPOINTS_DIR).is_dir():
        found = latest_valid_checkpoint(path, verify=verify)
        if found is None:
            raise CheckpointError(f"run folder {path} holds no valid checkpoint")
        return found
    return read_checkpoint(path, verify=verify)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Committed step folders of a run, newest first (validity not checked)."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [
        (int(match.group(1)), p)
        for p in root.iterdir()
        if p.is_dir() and not p.is_symlink() and (match := STEP_DIR.match(p.name))
    ]
    return [p for _, p in sorted(found, key=lambda pair: pair[0], reverse=True)]


def latest_valid_checkpoint(run_dir: str | Path, verify: bool = True) -> Checkpoint | None:
    """The newest whole checkpoint; each broken one passed over gets a one-line warning naming it."""
    for path in list_checkpoints(run_dir):
        problem = checkpoint_problem(path, verify=verify)
        if problem is None:
            return Checkpoint(path, _load_meta(path))
        log.warning("skipping checkpoint %s: %s", path, problem)
    return None


def resolve_resume(resume: str, run_dir: Path) -> Checkpoint | None:
    """`trainer.resume`: none → None; auto → newest valid or None; otherwise that checkpoint."""
    if resume == "none":
        return None
    if resume == "auto":
        found = latest_valid_checkpoint(run_dir)
        if found is None:
            log.info("resume=auto: no checkpoint under %s; starting fresh", run_dir / CHECKPOINTS_DIR)
        return found
    return read_checkpoint(resume)
