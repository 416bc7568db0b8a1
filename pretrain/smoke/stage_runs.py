"""Running one training stage for the smoke run: its config, a clean process environment, and the
outputs it leaves (loss series, checkpoints by step, figures from the throughput monitor)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from statistics import median

from pretrain.config import RunConfig, load_config
from pretrain.smoke.plan import SmokePlan, backbone_overrides, wandb_mode

ZERO2 = ["strategy.name=deepspeed", "strategy.zero_stage=2"]


def stage_config(recipe: str, out: Path, run_name: str, plan: SmokePlan, overrides: list[str]) -> RunConfig:
    """A shipped tiny recipe on the plan's device and precision, one log row per step."""
    common = [
        f"trainer.output_dir={out / 'runs'}",
        f"trainer.run_name={run_name}",
        f"trainer.accelerator={plan.accelerator}",
        f"trainer.precision={plan.precision}",
        f"logging.wandb={wandb_mode()}",
        "logging.every_steps=1",
        "data.num_workers=0",
        *backbone_overrides(plan.backbone),
    ]
    return load_config(recipe, common + overrides)


@contextmanager
def clean_environment() -> Iterator[None]:
    """In-process Lightning / DeepSpeed runs leave RANK, LOCAL_RANK, MASTER_PORT ... behind, which
    would make the next stage believe it is a launched rank: restore the environment after each.
    The one-process group stays (DeepSpeed caches it; later stages reuse it)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        for name in set(os.environ) - set(saved):
            del os.environ[name]
        os.environ.update(saved)


@contextmanager
def fused_attention_only(on_cuda: bool) -> Iterator[None]:
    """On CUDA, SDPA limited to flash and memory-efficient attention for a whole stage (a global
    setting, so the autograd thread obeys it too): any attention needing the math fallback raises."""
    if not on_cuda:
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
        yield


def run_stage_clean(config: RunConfig):
    """A stage in this process, its environment restored after; on CUDA with fused attention only."""
    from pretrain.train.entry import run_stage

    with clean_environment(), fused_attention_only(config.trainer.accelerator == "gpu"):
        return run_stage(config)


def loss_series(run_dir: Path, name: str = "train/loss") -> list[tuple[int, float]]:
    from pretrain.quickstart.report import metric_series

    return metric_series(run_dir, name)


def all_finite(series: list[tuple[int, float]]) -> bool:
    return bool(series) and all(math.isfinite(value) for _, value in series)


def checkpoint_at(run_dir: Path, step: int) -> Path | None:
    """The committed checkpoint folder of `step` (RUN/checkpoints/step-NNNNNNNN), if any."""
    path = run_dir / "checkpoints" / f"step-{step:08d}"
    return path if (path / "meta.json").is_file() else None


def throughput_figures(run_dir: Path, prefix: str, batch_size: int) -> dict[str, float | None]:
    """Medians of the throughput monitor's rows (the first report includes warm-up, so it is left
    out when there are others): clips/s, TFLOP/s, MFU, peak memory, seconds per step."""
    figures: dict[str, float] = {}
    for metric, name in (
        ("perf/clips_per_s", "clips_per_s"),
        ("perf/tflops_per_device", "tflops_per_s"),
        ("perf/mfu", "mfu"),
        ("perf/data_wait_fraction", "data_wait_fraction"),
        ("mem/device_peak_gb", "peak_device_memory_gb"),
        ("mem/host_peak_rss_gb", "peak_host_rss_gb"),
    ):
        values = [value for _, value in loss_series(run_dir, metric)]
        values = values[1:] or values
        if values:
            figures[f"{prefix}_{name}"] = round(median(values), 6)
    figures.setdefault(f"{prefix}_mfu", None)  # None: no known peak for this device (a CPU)
    if figures.get(f"{prefix}_clips_per_s"):
        figures[f"{prefix}_seconds_per_step"] = round(batch_size / figures[f"{prefix}_clips_per_s"], 6)
    return figures
