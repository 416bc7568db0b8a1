"""Helpers for the pretraining tests: a real folder corpus built into real shards, the tiny
recipe pointed at it, metrics read back from the run's CSV, and the `tubelet` CLI as a process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from pretrain.config import RunConfig, load_config
from pretrain.data.generated.corpora import square_frames, write_folder_tree
from pretrain.data.shards import BuildOptions, build_shards

# lr = base_lr × 4 / 256 ≈ 8e-4 on raw-pixel targets: the tiny model visibly learns within a few
# dozen steps (per-cube normalized targets of these synthetic clips take far longer to beat 1.0).
FAST_LEARNING = ("optim.base_lr=0.05", "model.norm_pix_loss=false")


def build_folder_shards(root: Path) -> Path:
    """8 encoded videos (2 classes, MP4 and AVI) of 16 frames in 2 shards."""
    write_folder_tree(root / "raw", classes=2, videos_per_class=4, frames=square_frames(16, num_classes=2))
    build_shards("folder", str(root / "raw"), str(root / "shards"), BuildOptions(shard_size_mb=0.05))
    return root / "shards"


def overrides(shards: Path, out: Path, name: str, *extra: str) -> list[str]:
    return [
        f"data.shards={shards}",
        f"trainer.output_dir={out}",
        f"trainer.run_name={name}",
        "logging.every_steps=1",
        *FAST_LEARNING,
        *extra,
    ]


def tiny_config(shards: Path, out: Path, name: str, *extra: str) -> RunConfig:
    return load_config("tiny", overrides(shards, out, name, *extra), stage="pretrain")


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def series(run_dir: Path, name: str) -> dict[int, float]:
    """step -> value of one metric (the CSV holds one row per logging call)."""
    return {int(row["step"]): float(row[name]) for row in read_metrics(run_dir) if row.get(name)}


def tubelet_command(*args: str) -> list[str]:
    """The installed console script, so Lightning can re-launch it once per extra rank."""
    script = Path(sys.executable).parent / "tubelet"
    return [str(script), *args]


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "WANDB_MODE": "offline", "DS_ACCELERATOR": "cpu", **(env or {})}
    return subprocess.run(
        tubelet_command(*args), capture_output=True, text=True, timeout=timeout, env=full_env
    )
