"""`tubelet bench infer`: inference of Tubelet's classifier against transformers'
VideoMAEForVideoClassification holding the same weights, on the same clip, in one process.

Variants: each model eager and (with `compile`) under `torch.compile`. Per variant: the median
batch-1 latency and the clips/s of a `batch`-clip forward, timed after warm-up with repetitions
alternating between variants so load from other processes hits all alike. On CUDA with bf16 the
forward runs under autocast. The logits of the two models are compared too (same function).
"""

from __future__ import annotations

import functools
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from pretrain.errors import UserError
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import VideoClassifier
from pretrain.runtime.eta import WorkProgress
from pretrain.weights import describe, save_hf

log = logging.getLogger(__name__)
HF_HEAD_NORM_EPS = 1e-5  # transformers fixes fc_norm's eps; ours uses the same so outputs match
DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class InferSettings:
    size: str = "s"
    img_size: int = 224
    num_frames: int = 16
    num_classes: int = 101
    batch: int = 4
    """Clips per forward for the clips/s figure (latency is always batch 1)."""
    device: str = "cpu"
    dtype: str = "fp32"
    compile: bool = True
    reps: int = 5
    warmup: int = 2
    threads: int | None = None


def hf_classifier(ours: VideoClassifier) -> nn.Module:
    """transformers' VideoMAEForVideoClassification with exactly our weights (through a HF folder)."""
    from transformers import VideoMAEForVideoClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as folder:
        save_hf(*describe(ours), folder)
        return VideoMAEForVideoClassification.from_pretrained(folder)


def _forward(model: nn.Module, hf: bool, autocast: Callable) -> Callable[[torch.Tensor], torch.Tensor]:
    @torch.inference_mode()
    def run(video: torch.Tensor) -> torch.Tensor:
        with autocast():
            return (
                model(pixel_values=video.transpose(1, 2)).logits if hf else model(video)
            )  # HF: (B, T, C, H, W)

    return run


def _variants(
    ours: nn.Module, hf: nn.Module, settings: InferSettings, autocast: Callable
) -> dict[str, Callable]:
    variants = {
        "ours eager": _forward(ours, False, autocast),
        "transformers eager": _forward(hf, True, autocast),
    }
    if settings.compile:
        variants["ours compiled"] = _forward(torch.compile(ours), False, autocast)
        variants["transformers compiled"] = _forward(torch.compile(hf), True, autocast)
    return variants


def _timed(run: Callable[[], Any], device: torch.device) -> float:
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def time_alternating(
    runs: dict[str, dict[int, Callable[[], Any]]], reps: int, warmup: int, device: torch.device
) -> dict[str, dict[int, float]]:
    """Median seconds of every (variant, batch size) call; after warm-up (and compilation) of each,
    repetitions alternate between variants so that load from other processes hits all alike."""
    for per_batch in runs.values():
        for run in per_batch.values():
            for _ in range(warmup):
                _timed(run, device)
    times: dict[str, dict[int, list[float]]] = {name: {b: [] for b in per} for name, per in runs.items()}
    progress = WorkProgress("bench infer: timed forwards", reps * sum(map(len, runs.values())), log)
    for _ in range(reps):
        for name, per_batch in runs.items():
            for batch, run in per_batch.items():
                times[name][batch].append(_timed(run, device))
                progress.advance(1)  # an ETA from the measured rate
    return {name: {b: statistics.median(t) for b, t in per.items()} for name, per in times.items()}


def run_infer_bench(settings: InferSettings) -> dict[str, Any]:
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(0)
    spec = ArchSpec.from_size(
        settings.size,
        img_size=settings.img_size,
        num_frames=settings.num_frames,
        head_norm_eps=HF_HEAD_NORM_EPS,
    )
    ours = VideoClassifier(spec, settings.num_classes, head_init_scale=1.0).eval()
    hf = hf_classifier(ours).eval()
    ours, hf = ours.to(device), hf.to(device)
    dtype = DTYPES[settings.dtype]
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    generator = torch.Generator().manual_seed(1)
    videos = {
        b: torch.randn(b, 3, spec.num_frames, spec.img_size, spec.img_size, generator=generator).to(device)
        for b in sorted({1, settings.batch})
    }
    agreement = float(
        (_forward(ours, False, autocast)(videos[1]).float() - _forward(hf, True, autocast)(videos[1]).float())
        .abs()
        .max()
    )
    runs = {
        name: {b: functools.partial(run, video) for b, video in videos.items()}
        for name, run in _variants(ours, hf, settings, autocast).items()
    }
    medians = time_alternating(runs, settings.reps, settings.warmup, device)
    return {
        **settings.__dict__,
        "tokens": spec.num_tokens,
        "threads": torch.get_num_threads(),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "max_abs_logit_diff": agreement,
        "variants": {
            name: {"latency_ms": 1000 * m[1], "clips_per_s": settings.batch / m[settings.batch]}
            for name, m in medians.items()
        },
    }
