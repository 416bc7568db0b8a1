"""The fine-tuning LightningModule (thin): classifier, soft-target loss, layer-decayed AdamW.

`mode=full` trains every weight with the published recipe knobs: layer-wise lr decay, drop path
(in the encoder), head dropout, mixup/cutmix with label smoothing (soft targets made per batch in
the streaming part's workers), warmup + cosine per step. `mode=linear_probe` is the standard
self-supervised evaluation: the encoder is frozen (and kept in eval mode, so no drop path and no
dropout inside it), and only a BatchNorm (affine=False) + linear head is trained.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from pretrain.config import RunConfig, config_to_dict
from pretrain.data.augment.transforms import normalize_video
from pretrain.models.classifier import VideoClassifier, is_linear_probe
from pretrain.train.module import precision_input
from pretrain.train.nan_guard import NonFiniteGuard
from pretrain.train.optim import build_adamw, schedule_for

log = logging.getLogger(__name__)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits (B, K), targets (B, K) summing to 1 per row -> mean loss."""
    return torch.sum(-targets * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()


class FinetuneModule(pl.LightningModule):
    """Classification training around a `VideoClassifier`; the class names travel in the
    checkpoint's hyper-parameters so `tubelet predict` can name its answers."""

    def __init__(
        self, config: RunConfig, model: VideoClassifier, class_names: list[str], steps_per_epoch: int
    ):
        super().__init__()
        self.config = config
        self.model = model
        self.class_names = list(class_names)
        self.steps_per_epoch = steps_per_epoch
        self.guard = NonFiniteGuard(config.trainer.max_nonfinite_steps)
        self.save_hyperparameters(
            {
                "config": config_to_dict(config),
                "class_names": self.class_names,
                "num_classes": model.num_classes,
            }
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return self.model(video)  # (B, K)

    def train(self, mode: bool = True) -> FinetuneModule:
        """Linear probing keeps the frozen encoder in eval mode; only the head trains."""
        super().train(mode)
        if mode and is_linear_probe(self.model):
            self.model.eval()
            self.model.head.train()
        return self

    def training_step(self, batch: dict, batch_index: int) -> torch.Tensor:
        video, label = self._video(batch), batch["label"]  # (B, C, T, H, W), (B,)
        loss, logits = self._loss(video, label, batch.get("target"))
        size = label.shape[0]
        loss = self.guard.checked(loss, self.trainer)  # every rank skips together
        self.log("train/nonfinite_skipped", float(self.guard.total_skipped), batch_size=size)
        if self.guard.skipping:
            return loss
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log("train/lr", self._head_lr(), batch_size=size)
        if not self._mixed:  # accuracy against hard labels means little on mixed clips
            self.log(
                "train/top1", (logits.argmax(-1) == label).float().mean(), prog_bar=True, batch_size=size
            )
        return loss

    @property
    def _mixed(self) -> bool:
        finetune = self.config.finetune
        return finetune.mixup > 0 or finetune.cutmix > 0

    def _video(self, batch: dict) -> torch.Tensor:
        """Normalized float clips; with `data.normalize_on_device` the stream ships pixels 0..255
        (uint8, or float after mixup) and they are normalized here, on the device."""
        video = batch["video"]
        spec = self.model.spec
        if not self.config.data.normalize_on_device:
            return video
        return precision_input(self, normalize_video(video, mean=spec.pixel_mean, std=spec.pixel_std))

    def _loss(
        self, video: torch.Tensor, label: torch.Tensor, target: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Soft targets (B, K) come with the batch when the stream applied mixup/cutmix/smoothing."""
        logits = self.model(video)  # (B, K)
        if target is not None:
            return soft_target_cross_entropy(logits, target.to(logits.device)), logits
        smoothing = self.config.finetune.label_smoothing
        return F.cross_entropy(logits.float(), label, label_smoothing=smoothing), logits

    def _head_lr(self) -> float:
        optimizer = self.trainer.optimizers[0] if self.trainer.optimizers else None
        return max(group["lr"] for group in optimizer.param_groups) if optimizer else 0.0

    def configure_optimizers(self) -> dict[str, Any]:
        groups = self.model.param_groups(self.config.optim.weight_decay, self.config.optim.layer_decay)
        schedule = schedule_for(self.config, self.steps_per_epoch)
        optimizer = build_adamw(groups, schedule.peak_lr, tuple(self.config.optim.betas))
        for group, source in zip(optimizer.param_groups, [g for g in groups if g["params"]]):
            # Layer decay: LambdaLR scales each group's initial_lr, so set it per group.
            group["initial_lr"] = schedule.peak_lr * source.get("lr_scale", 1.0)
        scheduler = schedule.lambda_scheduler(optimizer)
        log.info(
            "fine-tuning %d parameter groups, peak lr %.3g (layer decay %.2f), %d warmup / %d steps",
            len(optimizer.param_groups),
            schedule.peak_lr,
            self.config.optim.layer_decay,
            schedule.warmup_steps,
            schedule.total_steps,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
