"""Helpers of the GPU tests: stage overrides for a bf16 GPU run, and recipes per backbone."""

from __future__ import annotations

from pathlib import Path


def gpu_stage_overrides(shards: Path, out: Path, name: str) -> list[str]:
    """A stage on the GPU in bf16, quiet, one log row per step."""
    return [
        f"data.shards={shards}",
        f"trainer.output_dir={out}",
        f"trainer.run_name={name}",
        "trainer.accelerator=gpu",
        "trainer.precision=bf16-mixed",
        "logging.wandb=disabled",
        "logging.recon_every_steps=0",
        "logging.every_steps=1",
        "data.num_workers=0",
    ]


def backbone_config(backbone: str, *extra: str):
    """The tiny pretraining recipe with `model.backbone` (when the config has that key) and extras."""
    from pretrain.config import load_config
    from pretrain.smoke.plan import backbone_overrides

    return load_config("pretrain/tiny", [*backbone_overrides(backbone), *extra])
