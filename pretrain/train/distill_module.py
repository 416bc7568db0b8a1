"""The distillation LightningModules (thin): the fine-tuning and pretraining modules with a frozen
teacher beside the student (see `pretrain.config.distill_schema` for the two methods and sources).

- `LogitDistillModule`: fine-tuning whose loss adds KL to the teacher's softened logits on the very
  same clip the student sees (after the stream's mixup/cutmix: applied once, seen by both).
- `FeatureDistillModule`: masked pretraining whose targets are the teacher's features of the clip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretrain.config import RunConfig
from pretrain.models.classifier import VideoClassifier
from pretrain.models.feature_distill import FeatureStudent
from pretrain.models.videomae import VideoMAEOutput
from pretrain.train.finetune_module import FinetuneModule
from pretrain.train.module import PretrainModule
from pretrain.train.teacher import FrozenTeacher


def logit_distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), mean over the batch; logits (B, K)."""
    t = temperature
    student_log = F.log_softmax(student.float() / t, dim=-1)  # (B, K)
    teacher_log = F.log_softmax(teacher.float() / t, dim=-1)  # (B, K)
    return F.kl_div(student_log, teacher_log, log_target=True, reduction="batchmean") * t * t


class LogitDistillModule(FinetuneModule):
    """loss = (1 - distill.weight) * label loss + distill.weight * T^2 KL(teacher || student)."""

    def __init__(
        self,
        config: RunConfig,
        model: VideoClassifier,
        class_names: list[str],
        steps_per_epoch: int,
        teacher: FrozenTeacher,
    ):
        super().__init__(config, model, class_names, steps_per_epoch)
        self.teacher = teacher  # not an nn.Module: never in the state dict

    def _loss(
        self, video: torch.Tensor, label: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        label_loss, logits = super()._loss(video, label, target)  # (), (B, K)
        distill = self.config.distill
        kl = logit_distillation_loss(logits, self.teacher.logits(video), distill.temperature)
        size = label.shape[0]
        self.log("train/label_loss", label_loss, batch_size=size)
        self.log("train/distill_loss", kl, prog_bar=True, batch_size=size)
        return (1.0 - distill.weight) * label_loss + distill.weight * kl, logits


class FeatureDistillModule(PretrainModule):
    """The pretraining module with the teacher's features (B, N, D) of each clip as targets."""

    def __init__(
        self, config: RunConfig, model: FeatureStudent, steps_per_epoch: int, teacher: FrozenTeacher
    ):
        super().__init__(config, model, steps_per_epoch)
        self.teacher = teacher  # not an nn.Module: never in the state dict

    def forward(
        self, video: torch.Tensor, mask: torch.Tensor, decoder_mask: torch.Tensor | None = None
    ) -> VideoMAEOutput:
        targets = self.teacher.features(video)  # (B, N, D_teacher)
        if self.config.distill.norm_features:
            targets = F.layer_norm(targets, targets.shape[-1:], eps=1e-6)
        return self.model(video, mask, decoder_mask, targets)
