"""The pretraining LightningModule (thin): VideoMAE forward, NaN guard, AdamW + warmup/cosine.

Everything about distribution, checkpoints and reporting lives elsewhere (strategy, callbacks);
this only turns a batch into a loss and names the metrics.
"""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.strategies import DeepSpeedStrategy
from pytorch_lightning.utilities import grad_norm

from pretrain.config import RunConfig, config_to_dict
from pretrain.data.augment.transforms import normalize_video, yuv420_to_rgb
from pretrain.data.video.gpu_decode import EncodedBatch
from pretrain.models.videomae import VideoMAE, VideoMAEOutput
from pretrain.train.nan_guard import NonFiniteGuard
from pretrain.train.optim import build_adamw, param_groups, schedule_for
from pretrain.train.zero3 import dry_run_inputs, register_untracked_parameters

log = logging.getLogger(__name__)


def model_video(batch: dict[str, Any], spec: Any = None) -> torch.Tensor:
    """The batch's video as the model takes it: float (B, C, T, H, W), normalized (uint8 clips
    shipped with `data.normalize_on_device`, RGB or YUV 4:2:0, are converted here, on the device,
    with the model's `spec.pixel_mean`/`pixel_std`, ImageNet's without a spec)."""
    video = batch["video"]
    if isinstance(video, EncodedBatch):  # data.decode_device=cuda: decode, crop and resize here
        video = video.decode(batch["mask"].device)  # (B, T, H*3/2, W) YUV 4:2:0
    if video.dtype != torch.uint8:
        return video  # normalized by the loader
    stats = {} if spec is None else {"mean": spec.pixel_mean, "std": spec.pixel_std}
    if video.dim() == 4:  # YUV 4:2:0 frames (B, T, H*3/2, W), data.ship_yuv420
        return normalize_video(yuv420_to_rgb(video), **stats)
    return normalize_video(video, **stats)


def precision_input(module: pl.LightningModule, video: torch.Tensor) -> torch.Tensor:
    """`video` as the run's precision wants its inputs. Lightning converts a batch's float tensors
    before the step, but clips become float here, on the device; DeepSpeed bf16/fp16 runs hold
    bf16/fp16 weights and no autocast, so they need the same conversion (identity otherwise)."""
    trainer = module._trainer
    return trainer.precision_plugin.convert_input(video) if trainer is not None else video


class PretrainModule(pl.LightningModule):
    def __init__(self, config: RunConfig, model: VideoMAE, steps_per_epoch: int):
        super().__init__()
        self.config = config
        self.model = model
        self.steps_per_epoch = steps_per_epoch
        self.guard = NonFiniteGuard(config.trainer.max_nonfinite_steps)
        self.save_hyperparameters({"config": config_to_dict(config), "steps_per_epoch": steps_per_epoch})

    def setup(self, stage: str) -> None:
        """Under ZeRO-3, parameters the model reads outside their own module's forward must be
        gathered for the whole step (see `pretrain.train.zero3`)."""
        strategy = self.trainer.strategy
        if isinstance(strategy, DeepSpeedStrategy) and strategy.config and strategy.zero_stage_3:
            device = next(self.model.parameters()).device
            inputs = {
                k: v.to(device) if v is not None else None
                for k, v in dry_run_inputs(
                    self.model.spec, self.config.mask.ratio, self.config.mask.decoder_ratio
                ).items()
            }
            register_untracked_parameters(self, self.model, lambda: self(**inputs))

    def forward(
        self, video: torch.Tensor, mask: torch.Tensor, decoder_mask: torch.Tensor | None = None
    ) -> VideoMAEOutput:
        return self.model(video, mask, decoder_mask)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        output = self(
            precision_input(self, model_video(batch, self.model.spec)),
            batch["mask"],
            batch.get("decoder_mask"),
        )
        batch_size = batch["video"].shape[0]
        loss = self.guard.checked(output.loss, self.trainer)  # every rank skips together
        self.log("train/nonfinite_skipped", float(self.guard.total_skipped), batch_size=batch_size)
        if self.guard.skipping:
            return loss
        self.log("train/loss", output.loss, prog_bar=True, batch_size=batch_size)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"], prog_bar=True, batch_size=batch_size)
        return output.loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Gradient norm before clipping (DeepSpeed reports its own after the step)."""
        if self._uses_deepspeed() or self.global_step % self.config.logging.every_steps:
            return
        norms = grad_norm(self.model, norm_type=2)
        if "grad_2.0_norm_total" in norms:
            self.log("train/grad_norm", norms["grad_2.0_norm_total"])

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._uses_deepspeed():
            norm = getattr(self.trainer.model, "get_global_grad_norm", lambda: None)()
            if norm is not None and self.global_step % self.config.logging.every_steps == 0:
                self.log("train/grad_norm", float(norm))

    def configure_optimizers(self) -> dict:
        strategy = self.config.strategy
        offload_from_gpu = strategy.offload_optimizer != "none" and self.device.type == "cuda"
        groups = param_groups(self.model.named_parameters(), self.config.optim.weight_decay)
        optimizer = build_adamw(
            groups, self.config.lr, self.config.optim.betas, cpu_offload_on_gpu=offload_from_gpu
        )
        schedule = schedule_for(self.config, self.steps_per_epoch)
        log.info(
            "lr %.3g (base %.3g × global batch %d / 256), warmup %d of %d steps",
            schedule.peak_lr,
            self.config.optim.base_lr,
            self.config.global_batch,
            schedule.warmup_steps,
            schedule.total_steps,
        )
        scheduler = schedule.lambda_scheduler(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _uses_deepspeed(self) -> bool:
        return isinstance(self.trainer.strategy, DeepSpeedStrategy)
