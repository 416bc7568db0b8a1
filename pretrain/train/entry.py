"""`run_stage(config, launch)`: the one entry point of a training stage, local or under Ray.

Locally, Lightning launches the processes itself (`trainer.devices=2` on CPU re-runs the command
once per extra rank). An outer launcher (the Ray runner) instead passes an `ExternalLaunch` with
its own strategy, environment plugins, report callbacks and the checkpoint to resume from.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from pytorch_lightning.utilities.rank_zero import rank_zero_only

from pretrain import __version__ as TUBELET_VERSION
from pretrain.config import ConfigError, RunConfig, config_to_yaml

log = logging.getLogger(__name__)

# Run name shared with the processes Lightning launches for the other local ranks.
RUN_NAME_ENV = "TUBELET_RUN_NAME"
RUN_CONFIG = "config.yaml"
RUN_INFO = "run.json"

# stage -> "module:function" taking (config, launch) and returning a StageResult.
STAGE_RUNNERS = {
    "pretrain": "pretrain.train.pretrain_stage:run_pretrain",
    "finetune": "pretrain.train.finetune_stage:run_finetune",
}


@dataclass
class ExternalLaunch:
    """What an outer launcher injects into the Lightning Trainer."""

    strategy: Any
    """A Lightning strategy object (e.g. Ray's RayDDPStrategy / RayDeepSpeedStrategy)."""
    plugins: list = field(default_factory=list)
    """Trainer plugins, e.g. the launcher's cluster environment."""
    callbacks: list = field(default_factory=list)
    """Extra callbacks, e.g. the launcher's checkpoint/metrics report callback."""
    resume_from: Optional[str] = None
    """A checkpoint folder (or its state) to resume from; overrides `trainer.resume`."""


@dataclass
class StageResult:
    run_dir: Path
    global_step: int
    metrics: dict[str, float]
    """Last logged value of each metric (rank zero's view)."""
    checkpoints: list[Path]
    """Checkpoints this run committed, oldest first."""
    last_checkpoint: Optional[Path]
    stopped_by_signal: bool = False
    skipped_nonfinite: int = 0
    resumed_from: Optional[Path] = None


def run_stage(config: RunConfig, launch: Optional[ExternalLaunch] = None) -> StageResult:
    """Run `config.stage` to completion (or preemption) and say what it produced."""
    target = STAGE_RUNNERS.get(config.stage)
    if target is None:
        raise ConfigError(f"stage={config.stage!r} has no runner; choose one of {sorted(STAGE_RUNNERS)}")
    module_name, function_name = target.split(":")
    try:
        runner = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"stage={config.stage!r} is not available in this build: {error}") from None
    return runner(config, launch)


def resolve_run_dir(config: RunConfig) -> Path:
    """output_dir/run_name; without a name, a timestamped one shared with the launched ranks."""
    name = config.trainer.run_name
    launched_rank = os.environ.get("LOCAL_RANK", "0") != "0"  # a process Lightning started for us
    if not name and launched_rank:
        name = os.environ.get(RUN_NAME_ENV)
    if not name:
        name = f"{config.stage}-{config.model.size}-{time.strftime('%Y%m%d-%H%M%S')}"
        os.environ[RUN_NAME_ENV] = name  # inherited by the ranks Lightning launches
    return Path(config.trainer.output_dir) / name


def save_run_info(config: RunConfig, run_dir: Path, extra: Optional[dict] = None) -> None:
    """Rank zero: the resolved config and the package version, beside the run's outputs."""
    if rank_zero_only.rank != 0:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / RUN_CONFIG).write_text(config_to_yaml(config))
    info = {"tubelet_version": TUBELET_VERSION, "stage": config.stage, "world_size": config.world_size,
            "global_batch": config.global_batch, "lr": config.lr, "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            **(extra or {})}
    tmp = run_dir / f".{RUN_INFO}.tmp"
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
    tmp.replace(run_dir / RUN_INFO)
