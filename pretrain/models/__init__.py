"""Models (pure PyTorch) and their builders.

The builders take a `pretrain.config.ModelConfig` / `RunConfig` (read by attribute only; this package
does not import the config module, so models stay importable with torch alone). Names are imported
lazily so that `pretrain.config` (which reads `pretrain.models.sizes`) does not pull in torch.

`from_pretrained(path)` (any weights source -> an eval-ready model) lives in `pretrain.weights`,
which builds on this package (models import nothing above them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pretrain.config import ModelConfig, RunConfig
    from pretrain.models.arch import ArchSpec
    from pretrain.models.classifier import VideoClassifier
    from pretrain.models.videomae import VideoMAE

_LAZY = {
    "ArchSpec": "pretrain.models.arch",
    "VideoClassifier": "pretrain.models.classifier",
    "VideoMAE": "pretrain.models.videomae",
    "VideoMAEOutput": "pretrain.models.videomae",
    "masked_video": "pretrain.models.videomae",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ArchSpec",
    "VideoClassifier",
    "VideoMAE",
    "VideoMAEOutput",
    "masked_video",
    "arch_spec",
    "build_pretraining_model",
    "build_classifier",
    "build_finetune_model",
]


def arch_spec(model_cfg: ModelConfig) -> ArchSpec:
    """Shapes of the model a `ModelConfig` describes."""
    from pretrain.models.arch import ArchSpec

    return ArchSpec.from_size(
        model_cfg.size,
        img_size=model_cfg.img_size,
        num_frames=model_cfg.num_frames,
        tubelet_size=model_cfg.tubelet_size,
        patch_size=model_cfg.patch_size,
        backbone=model_cfg.backbone,
        temporal_depth=model_cfg.temporal_depth,
        **{
            name: tuple(value)
            for name in ("pixel_mean", "pixel_std")
            if (value := getattr(model_cfg, name)) is not None
        },
    )


def build_pretraining_model(model_cfg: ModelConfig) -> VideoMAE:
    from pretrain.models.videomae import VideoMAE

    return VideoMAE(
        arch_spec(model_cfg),
        drop_path=model_cfg.drop_path,
        norm_pix_loss=model_cfg.norm_pix_loss,
        grad_checkpointing=model_cfg.grad_checkpointing,
    )


def build_classifier(model_cfg: ModelConfig, num_classes: int, head_dropout: float = 0.0) -> VideoClassifier:
    from pretrain.models.classifier import VideoClassifier

    return VideoClassifier(
        arch_spec(model_cfg),
        num_classes,
        head_dropout=head_dropout,
        drop_path=model_cfg.drop_path,
        grad_checkpointing=model_cfg.grad_checkpointing,
    )


def build_finetune_model(config: RunConfig, num_classes: int) -> VideoClassifier:
    """The classifier of a fine-tuning run's config; for `finetune.mode=linear_probe` its head becomes
    BatchNorm + linear and everything else is frozen."""
    from pretrain.models.classifier import make_linear_probe

    model = build_classifier(config.model, num_classes, head_dropout=config.finetune.head_dropout)
    if config.finetune.mode == "linear_probe":
        make_linear_probe(model)
    return model
