"""The frozen teacher of `tubelet distill`: read from any source, checked against the student, kept
out of training.

The teacher is held outside the LightningModule's module tree (`FrozenTeacher` is not an
`nn.Module`), so it is never in the student's state dict: not in checkpoints or exports, not handed
to the optimizer, not partitioned by ZeRO. Its weights have requires_grad False and it stays in eval
mode (Lightning's `train()` never reaches it); it follows the inputs to their device and dtype
(bf16/fp16 under DeepSpeed, whose inputs arrive in that dtype; autocast covers mixed precision).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from pretrain.config import ConfigError, RunConfig
from pretrain.models import arch_spec
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import VideoClassifier
from pretrain.models.patches import patchify
from pretrain.weights import from_pretrained

log = logging.getLogger(__name__)


class FrozenTeacher:
    """A frozen model answering `logits(video)` (B, K) or `features(video)` (B, N, D)."""

    def __init__(self, model: nn.Module, source: str):
        self.model = model.eval().requires_grad_(False)
        self.spec: ArchSpec = model.spec
        self.source = source
        self.encoder = getattr(model, "encoder", model)

    @property
    def width(self) -> int:
        return self.spec.dim

    def _follow(self, video: torch.Tensor) -> None:
        first = next(self.model.parameters())
        if first.device != video.device or (first.dtype != video.dtype and video.dtype.is_floating_point):
            self.model.to(device=video.device, dtype=video.dtype)

    @torch.no_grad()
    def logits(self, video: torch.Tensor) -> torch.Tensor:
        """Normalized video (B, C, T, H, W) -> the teacher's logits (B, K)."""
        self._follow(video)
        return self.model(video)

    @torch.no_grad()
    def features(self, video: torch.Tensor) -> torch.Tensor:
        """Normalized video (B, C, T, H, W) -> the encoder's last-layer tokens (B, N, D) of the
        whole clip, after its final norm where it has one; a class token is left out."""
        self._follow(video)
        tokens = self.encoder(patchify(video, self.spec.tubelet_size, self.spec.patch_size))
        return tokens[:, self.encoder.num_prefix_tokens :]  # (B, N, D)


def load_teacher(config: RunConfig, num_classes: int | None = None) -> FrozenTeacher:
    """`distill.teacher` read by `from_pretrained`, checked against the student before any work."""
    source = config.distill.teacher
    if not source:
        raise ConfigError("distill.teacher=PATH is required")
    if not Path(source).expanduser().exists():
        raise ConfigError(f"distill.teacher={source!r}: no such file or folder")
    teacher = FrozenTeacher(from_pretrained(Path(source).expanduser()), source)
    check_teacher(teacher, config, num_classes)
    log.info(
        "teacher %s: %s %s, width %d, depth %d (frozen, eval mode, not saved with the student)",
        source,
        teacher.spec.backbone,
        type(teacher.model).__name__,
        teacher.spec.dim,
        teacher.spec.depth,
    )
    return teacher


def check_teacher(teacher: FrozenTeacher, config: RunConfig, num_classes: int | None) -> None:
    """The teacher must see exactly the student's input (and, for features, its token grid)."""
    student, kind = arch_spec(config.model), config.distill.kind
    if kind == "logits" and not isinstance(teacher.model, VideoClassifier):
        raise ConfigError(
            f"distill.kind=logits needs a fine-tuned classifier as distill.teacher; {teacher.source} "
            f"holds a {type(teacher.model).__name__}"
        )
    pairs = [
        ("frames", "model.num_frames", teacher.spec.num_frames, student.num_frames),
        ("image size", "model.img_size", teacher.spec.img_size, student.img_size),
        ("normalization mean", "model.pixel_mean", list(teacher.spec.pixel_mean), list(student.pixel_mean)),
        ("normalization std", "model.pixel_std", list(teacher.spec.pixel_std), list(student.pixel_std)),
    ]
    if kind == "features":
        pairs += [
            ("tubelet size", "model.tubelet_size", teacher.spec.tubelet_size, student.tubelet_size),
            ("patch size", "model.patch_size", teacher.spec.patch_size, student.patch_size),
        ]
    if kind == "logits" and num_classes is not None:
        pairs.append(("classes", "the shards' classes", teacher.model.num_classes, num_classes))
    differences = [
        f"{what}: teacher {ours} vs student {theirs} ({key})"
        for what, key, ours, theirs in pairs
        if ours != theirs
    ]
    if differences:
        raise ConfigError(
            f"distill.teacher={teacher.source!r} does not take the student's input: " + "; ".join(differences)
        )
