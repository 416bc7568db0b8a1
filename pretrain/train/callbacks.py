"""Reporting callbacks: throughput / MFU / data wait / memory / skipped samples, and reconstructions.

All ranks run these hooks (the reconstruction forward is collective under ZeRO-3); only rank zero
writes files. Metrics go through `pl_module.log` so every configured logger (W&B, CSV) gets them.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import WandbLogger

from pretrain.atomic import replaced_atomically
from pretrain.models.videomae import masked_video
from pretrain.train.module import model_video, precision_input
from pretrain.train.recon_image import reconstruction_image
from pretrain.train.wandb_logger import STEP_METRIC

log = logging.getLogger(__name__)

RECONSTRUCTIONS_DIR = "reconstructions"


class ThroughputMonitor(Callback):
    """Clips/s, tokens/s, TFLOP/s and MFU per device, data-wait fraction, peak memory, skipped samples.

    Data wait is the time between the end of one training batch and the start of the next (the
    loader's fetch dominates it); the fraction is over the whole interval since the last report.
    """

    def __init__(
        self,
        tokens_per_clip: int,
        train_flops_per_clip: int,
        every_steps: int,
        peak_tflops: float | None,
        loader_stats: Any | None = None,
    ):
        self.tokens_per_clip = tokens_per_clip
        self.flops_per_clip = train_flops_per_clip  # forward + backward of one clip (the model counts)
        self.every_steps = every_steps
        self.peak_tflops = peak_tflops
        self.loader_stats = loader_stats
        self._logged_step: int | None = None
        self._reset(time.perf_counter())
        self._batch_end: float | None = None

    def _reset(self, now: float) -> None:
        self._window_start, self._clips, self._wait = now, 0, 0.0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        now = time.perf_counter()
        if self._batch_end is None:
            self._reset(now)  # the first batch's wait includes start-up: leave it out
        else:
            self._wait += now - self._batch_end

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._clips += int(batch["video"].shape[0])
        self._batch_end = time.perf_counter()
        if trainer.global_step == 0 or trainer.global_step % self.every_steps or not self._clips:
            return
        if self._logged_step == trainer.global_step:
            return
        self._logged_step = trainer.global_step
        pl_module.log_dict(self.metrics(self._batch_end - self._window_start), rank_zero_only=True)
        self._reset(self._batch_end)

    def metrics(self, seconds: float) -> dict[str, float]:
        clips_per_s = self._clips / max(seconds, 1e-9)
        tflops = clips_per_s * self.flops_per_clip / 1e12
        out = {
            "perf/clips_per_s": clips_per_s,
            "perf/tokens_per_s": clips_per_s * self.tokens_per_clip,
            "perf/tflops_per_device": tflops,
            "perf/data_wait_fraction": min(1.0, self._wait / max(seconds, 1e-9)),
            **device_memory(),
        }
        if self.peak_tflops:
            out["perf/mfu"] = tflops / self.peak_tflops
        if self.loader_stats is not None:
            out.update({k: float(v) for k, v in self.loader_stats().items()})
        return out


def device_memory() -> dict[str, float]:
    """Peak memory of this process: CUDA allocator when on GPU, else the host's peak RSS."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return {
            "mem/device_peak_gb": torch.cuda.max_memory_allocated() / 2**30,
            "mem/device_reserved_gb": torch.cuda.memory_reserved() / 2**30,
        }
    return {"mem/host_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


class ReconstructionLogger(Callback):
    """Every N steps: original | masked | reconstruction of one clip, as a PNG grid (rows = time
    slots) and an MP4 in RUN/reconstructions/, and as a W&B video when W&B is on.

    W&B gets them in the history row of their step (the PNG's `step-00000020` is row 20, and W&B
    names the media files `grid_20_*`): after step N, Lightning still logs the batch's metrics as
    row N-1, so the media wait for the next batch (or the end of training)."""

    def __init__(self, run_dir: Path, every_steps: int, fps: int = 4):
        self.out_dir = Path(run_dir) / RECONSTRUCTIONS_DIR
        self.every_steps = every_steps
        self.fps = fps
        self.written: list[Path] = []
        self._done_step = -1
        self._pending_media: tuple[int, Path, Path] | None = None  # (step, png, mp4) for W&B

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._log_pending_media(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_pending_media(trainer)

    def _log_pending_media(self, trainer: pl.Trainer) -> None:
        if self._pending_media is None:
            return
        step, png, mp4 = self._pending_media
        self._pending_media = None
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                # wandb names media by the step it was at before this call: move it to `step` first.
                logger.experiment.log({STEP_METRIC: step}, step=step, commit=False)
                logger.experiment.log(
                    {
                        "recon/video": wandb.Video(str(mp4), format="mp4"),
                        "recon/grid": wandb.Image(str(png), caption=png.stem),
                    },
                    step=step,
                )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not self.every_steps or step == 0 or step % self.every_steps or step == self._done_step:
            return
        self._done_step = step
        panels = self.panels(pl_module, batch)  # (T, C, H, 3W) uint8, every rank ran the forward
        if trainer.is_global_zero:
            self.write(panels, step, trainer)

    @torch.no_grad()
    def panels(self, pl_module: pl.LightningModule, batch: dict) -> np.ndarray:
        model = pl_module.model
        video, mask = (
            precision_input(pl_module, model_video(batch, model.spec)[:1]),
            batch["mask"][:1],
        )  # (1, C, T, H, W), (1, N)
        decoder_mask = batch.get("decoder_mask")
        decoder_mask = decoder_mask[:1] if decoder_mask is not None else None
        was_training = model.training
        model.eval()
        try:
            output = model(video, mask, decoder_mask)
            recon = model.reconstruct(video, mask, output)  # (1, C, T, H, W) in [0, 1]
        finally:
            model.train(was_training)
        original = masked_video(video, torch.zeros_like(mask), model.spec)
        masked = masked_video(video, mask, model.spec)
        side_by_side = torch.cat([original, masked, recon], dim=-1)[0]  # (C, T, H, 3W)
        return (side_by_side.permute(1, 0, 2, 3).float().cpu().numpy() * 255).round().astype(np.uint8)

    def write(self, panels: np.ndarray, step: int, trainer: pl.Trainer) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        png = self.out_dir / f"step-{step:08d}.png"
        with replaced_atomically(png) as (tmp,):
            reconstruction_image(panels, f"step {step}").save(tmp, format="PNG")
        mp4 = self._write_mp4(panels, step)
        self.written.append(png)
        if mp4 is not None:
            self._pending_media = (step, png, mp4)

    def _write_mp4(self, panels: np.ndarray, step: int) -> Path | None:
        """H.264 through PyAV (W&B would need moviepy to encode raw arrays itself)."""
        from pretrain.data.video.write import write_video

        path = self.out_dir / f"step-{step:08d}.mp4"
        frames = panels.transpose(0, 2, 3, 1)  # (T, H, 3W, C)
        height, width = frames.shape[1:3]
        frames = frames[:, : height - height % 2, : width - width % 2]  # H.264 needs even sides
        try:
            write_video(path, frames, fps=self.fps)
        except Exception as error:  # a missing encoder must not stop training
            log.warning("could not encode reconstruction video %s: %s", path, error)
            return None
        return path
