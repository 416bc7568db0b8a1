"""What a smoke run does on which device: sizes, precision, strategy, backbone.

CUDA: bf16-mixed, DeepSpeed ZeRO-2 in one process, fused AdamW, flash / memory-efficient SDPA.
CPU: fp32 through the same DeepSpeed ZeRO-2 path (gloo). `small()` is the CI setting.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from pretrain.errors import ConfigError

DEFAULT_BACKBONE = "vit"
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class SmokePlan:
    device: str = "cpu"
    """Resolved device: cpu or cuda."""
    backbone: str = DEFAULT_BACKBONE
    test_groups: tuple[int, ...] = tuple(range(1, 8))
    """UCF101 groups of the motion dataset that split 1 tests (groups 1-7: 28 videos)."""
    train_groups: tuple[int, ...] = tuple(range(8, 26))
    """Groups split 1 trains on (8-25: 72 videos)."""
    num_frames: int = 24
    """Frames per generated video (clips sample 8 at stride 2)."""
    pretrain_steps: int = 40
    """Steps of the uninterrupted pretraining run; the resumed run restarts from the middle."""
    finetune_steps: int = 120
    """Fine-tuning steps (about 7 epochs of the 72 training clips, 2 clips per visit)."""
    predict_videos: int = 4

    @classmethod
    def small(cls, device: str = "cpu", backbone: str = DEFAULT_BACKBONE) -> SmokePlan:
        return cls(
            device=device,
            backbone=backbone,
            test_groups=(1,),
            train_groups=(8, 9, 10),
            num_frames=20,
            pretrain_steps=6,
            finetune_steps=4,
            predict_videos=1,
        )

    @property
    def resume_step(self) -> int:
        return self.pretrain_steps // 2

    @property
    def on_cuda(self) -> bool:
        return self.device == "cuda"

    @property
    def precision(self) -> str:
        return "bf16-mixed" if self.on_cuda else "32-true"

    @property
    def accelerator(self) -> str:
        return "gpu" if self.on_cuda else "cpu"


def resolve_device(requested: str) -> str:
    """auto → cuda when a GPU is visible; cuda without one is a user error, said up front."""
    if requested not in DEVICES:
        raise ConfigError(f"--device {requested!r} is not allowed; choose one of {list(DEVICES)}")
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but CUDA is not available here; use --device cpu or auto")
    return requested


def wandb_mode() -> str:
    """Online when a W&B key is set (and WANDB_MODE does not say otherwise), else offline;
    disabled when wandb is not installed (the bare GPU machine may lack it)."""
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        return "disabled"
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def config_has_backbone() -> bool:
    from dataclasses import fields

    from pretrain.config.schema import ModelConfig

    return any(f.name == "backbone" for f in fields(ModelConfig))


def backbone_names() -> tuple[str, ...]:
    """The values `model.backbone` allows, read from the config's own error for a bad value
    (one source of truth); only `vit` while the config has no backbone key."""
    if not config_has_backbone():
        return (DEFAULT_BACKBONE,)
    from pretrain.config import load_config

    try:
        load_config("pretrain/tiny", ["model.backbone=__no_such_backbone__"])
    except ConfigError as error:
        listed = re.search(r"\[([^\]]*)\]", str(error))
        if listed:
            return tuple(name.strip(" '\"") for name in listed.group(1).split(",") if name.strip())
    return (DEFAULT_BACKBONE,)


def backbone_overrides(backbone: str) -> list[str]:
    """`model.backbone=NAME` for the stage configs, after checking NAME is allowed."""
    allowed = backbone_names()
    if backbone not in allowed:
        raise ConfigError(f"--backbone {backbone!r} is not allowed; choose one of {list(allowed)}")
    return [f"model.backbone={backbone}"] if config_has_backbone() else []


def plan_for(device: str, backbone: str = DEFAULT_BACKBONE, small: bool = False) -> SmokePlan:
    """The plan for a requested device (auto, cpu, cuda); a bad backbone fails before any work."""
    backbone_overrides(backbone)
    resolved = resolve_device(device)
    return SmokePlan.small(resolved, backbone) if small else SmokePlan(device=resolved, backbone=backbone)
