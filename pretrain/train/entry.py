"""`run_stage(config, launch)`: the one entry point of a training stage, local or under Ray.

It describes `config.stage` (a `Stage`) and hands it to the one runner, `pretrain.train.stage.run`.
"""

from __future__ import annotations

from collections.abc import Callable

from pretrain.config import ConfigError, RunConfig
from pretrain.train.distill_stage import distill_stage
from pretrain.train.finetune_stage import finetune_stage
from pretrain.train.pretrain_stage import pretrain_stage
from pretrain.train.stage import ExternalLaunch, Stage, StageResult, run

__all__ = ["ExternalLaunch", "StageResult", "run_stage"]

STAGES: dict[str, Callable[[RunConfig], Stage]] = {
    "pretrain": pretrain_stage,
    "finetune": finetune_stage,
    "distill": distill_stage,
}


def run_stage(config: RunConfig, launch: ExternalLaunch | None = None) -> StageResult:
    """Run `config.stage` to completion (or preemption) and say what it produced."""
    describe = STAGES.get(config.stage)
    if describe is None:
        raise ConfigError(f"stage={config.stage!r} has no runner; choose one of {sorted(STAGES)}")
    return run(describe(config), config, launch)
