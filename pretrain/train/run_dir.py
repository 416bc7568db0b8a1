"""The run directory of a stage: its name (one scheme, local and Ray), its saved config and info,
and the command that resumes it. Light on purpose (no Lightning): the Ray driver names runs too."""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

from pretrain import __version__ as TUBELET_VERSION
from pretrain.atomic import replaced_atomically
from pretrain.config import RunConfig, config_to_yaml

# Run name shared with the processes Lightning launches for the other local ranks.
RUN_NAME_ENV = "TUBELET_RUN_NAME"
RUN_CONFIG = "config.yaml"
RUN_INFO = "run.json"


def default_run_name(config: RunConfig) -> str:
    """`<stage>-<model size>-<YYYYmmdd-HHMMSS>`, the name of a run started without `trainer.run_name`."""
    return f"{config.stage}-{config.model.size}-{time.strftime('%Y%m%d-%H%M%S')}"


def resolve_run_dir(config: RunConfig) -> Path:
    """output_dir/run_name; without a name, a timestamped one shared with the launched ranks."""
    name = config.trainer.run_name
    launched_rank = os.environ.get("LOCAL_RANK", "0") != "0"  # a process Lightning started for us
    if not name and launched_rank:
        name = os.environ.get(RUN_NAME_ENV)
    if not name:
        name = default_run_name(config)
        os.environ[RUN_NAME_ENV] = name  # inherited by the ranks Lightning launches
    return Path(config.trainer.output_dir) / name


def save_run_info(config: RunConfig, run_dir: Path, extra: dict | None = None) -> None:
    """The resolved config and the package version, beside the run's outputs (call on rank zero)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_CONFIG).write_text(config_to_yaml(config))
    info = {
        "tubelet_version": TUBELET_VERSION,
        "stage": config.stage,
        "world_size": config.world_size,
        "global_batch": config.global_batch,
        "lr": config.lr,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **(extra or {}),
    }
    with replaced_atomically(run_dir / RUN_INFO) as (tmp,):
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True))


def resume_command(config: RunConfig, run_dir: Path) -> str:
    """The exact command that continues this run from its newest checkpoint: the run's saved
    config, its name, and `trainer.resume=auto`."""
    words = [
        "tubelet",
        config.stage,
        str(run_dir / RUN_CONFIG),
        f"trainer.run_name={run_dir.name}",
        f"trainer.output_dir={run_dir.parent}",
        "trainer.resume=auto",
    ]
    return " ".join(shlex.quote(word) for word in words)
