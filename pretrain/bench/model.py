"""`tubelet bench model`: one pretraining step (forward, backward, AdamW) of Tubelet's VideoMAE
against transformers' VideoMAEForPreTraining with the same weights, input and mask, in one process.

Repetitions alternate between the two models so that load from other processes hits both alike;
the figure per model is the median step time. Memory: on CUDA the peak allocated bytes during a
step; on CPU (no allocator statistics) the bytes of activations autograd saves for backward during
the forward, counted once per storage - the memory that grows with batch size.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from pretrain.errors import UserError
from pretrain.masking import batch_masks
from pretrain.models.arch import ArchSpec
from pretrain.models.flops import training_flops, videomae_forward_flops
from pretrain.models.videomae import VideoMAE
from pretrain.runtime.device_peaks import peak_tflops
from pretrain.runtime.eta import WorkProgress
from pretrain.weights import describe, save_hf

log = logging.getLogger(__name__)
HF_HEAD_NORM_EPS = 1e-5  # so both models compute exactly the same function


@dataclass
class BenchSettings:
    size: str = "s"
    batch: int = 2
    img_size: int = 224
    num_frames: int = 16
    mask_ratio: float = 0.9
    decoder_mask_ratio: float = 0.0
    device: str = "cpu"
    dtype: str = "fp32"
    reps: int = 3
    warmup: int = 1
    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None keeps torch's default
    compile: bool = False  # also time both models under torch.compile (pretrain.bench.model_compile)


def hf_twin(ours: VideoMAE) -> torch.nn.Module:
    """transformers' VideoMAEForPreTraining holding exactly our weights (through a HF folder)."""
    from transformers import VideoMAEForPreTraining
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the benchmark prints figures, not loading bars
    with tempfile.TemporaryDirectory() as folder:
        save_hf(*describe(ours), folder)
        return VideoMAEForPreTraining.from_pretrained(folder)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_step(model: torch.nn.Module, loss_fn: Callable[[], torch.Tensor], autocast) -> Callable[[], float]:
    # The same optimizer for both models: fused AdamW (one kernel over all parameters).
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True
    )

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn()
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def saved_activation_bytes(forward: Callable[[], torch.Tensor]) -> int:
    """Bytes autograd keeps for backward during `forward` (each storage counted once)."""
    seen: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        forward().backward()
    return sum(seen.values())


def _peak_memory(
    step: Callable[[], float], loss_fn: Callable[[], torch.Tensor], autocast, device: torch.device
) -> int:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        step()
        _sync(device)
        return torch.cuda.max_memory_allocated(device)

    def forward() -> torch.Tensor:
        with autocast():
            return loss_fn()

    return saved_activation_bytes(forward)


def _time_alternating(
    steps: dict[str, Callable[[], float]], settings: BenchSettings, device: torch.device
) -> dict[str, dict[str, list[float]]]:
    """Wall-clock and process CPU seconds of each step, models alternating rep by rep."""
    for _ in range(settings.warmup):
        for step in steps.values():
            step()
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in steps}
    progress = WorkProgress("bench: timed steps", settings.reps * len(steps), log)  # ETA: measured rate
    for _ in range(settings.reps):
        for name, step in steps.items():
            _sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            _sync(device)
            times[name]["wall"].append(time.perf_counter() - start)
            times[name]["cpu"].append(time.process_time() - start_cpu)
            progress.advance(1)
    return times


def _inputs(spec: ArchSpec, settings: BenchSettings, device: torch.device):
    generator = torch.Generator().manual_seed(settings.seed)
    video = torch.randn(settings.batch, 3, spec.num_frames, spec.img_size, spec.img_size, generator=generator)
    mask, decoder_mask = batch_masks(
        settings.batch, spec.grid, settings.mask_ratio, settings.decoder_mask_ratio, generator=generator
    )
    hf_video = video.permute(0, 2, 1, 3, 4).contiguous()  # transformers takes (B, T, C, H, W)

    def move(t):
        return None if t is None else t.to(device)

    return move(video), move(hf_video), move(mask), move(decoder_mask)


def run_model_bench(settings: BenchSettings) -> dict[str, Any]:
    """Step times, speedup, memory and (on CUDA) TFLOP/s and MFU of both models."""
    device = torch.device(settings.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda requested but CUDA is not available")
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    spec = ArchSpec.from_size(
        settings.size, settings.img_size, settings.num_frames, head_norm_eps=HF_HEAD_NORM_EPS
    )
    ours = VideoMAE(spec).to(device).train()
    hf = hf_twin(ours).to(device).train()
    video, hf_video, mask, decoder_mask = _inputs(spec, settings, device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(settings.dtype)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    loss_fns = {
        "ours": lambda: ours(video, mask, decoder_mask).loss,
        "hf": lambda: hf(hf_video, bool_masked_pos=mask).loss,
    }
    steps = {
        "ours": _make_step(ours, loss_fns["ours"], autocast),
        "hf": _make_step(hf, loss_fns["hf"], autocast),
    }
    memory = {name: _peak_memory(steps[name], loss_fns[name], autocast, device) for name in steps}
    compile_s = (
        _add_compiled(steps, ours, hf, (video, hf_video, mask, decoder_mask), autocast, device)
        if settings.compile
        else {}
    )
    times = _time_alternating(steps, settings, device)
    result = _report(settings, spec, mask, decoder_mask, times, memory, device)
    if settings.compile:
        from pretrain.bench.model_compile import compiled_figures

        result.update(compiled_figures(times, compile_s))
    return result


def _add_compiled(
    steps: dict, ours: torch.nn.Module, hf: torch.nn.Module, inputs: tuple, autocast, device: torch.device
) -> dict[str, float]:
    """Compiled twins' steps into `steps`; returns each one's first step (compilation) seconds."""
    from pretrain.bench.model_compile import compiled_loss_fns, compiled_twins, first_step_seconds

    twins = compiled_twins(ours, hf)
    loss_fns = compiled_loss_fns(twins, *inputs)
    for name, loss_fn in loss_fns.items():
        steps[name] = _make_step(twins[name], loss_fn, autocast)
    return {name: first_step_seconds(steps[name], lambda: _sync(device)) for name in loss_fns}


def _report(
    settings: BenchSettings,
    spec: ArchSpec,
    mask: torch.Tensor,
    decoder_mask: torch.Tensor | None,
    times: dict[str, dict[str, list[float]]],
    memory: dict[str, int],
    device: torch.device,
) -> dict[str, Any]:
    visible = spec.num_tokens - int(mask[0].sum())
    targets = mask if decoder_mask is None else mask & decoder_mask
    target_tokens = float(targets.sum(1).float().mean())
    flops = {
        "ours": training_flops(videomae_forward_flops(spec, visible, round(target_tokens))) * settings.batch,
        "hf": training_flops(
            videomae_forward_flops(
                spec, visible, spec.num_tokens - visible, embedded=spec.num_tokens, trimmed_last_block=False
            )
        )
        * settings.batch,
    }
    step_s = {name: statistics.median(values["wall"]) for name, values in times.items()}
    cpu_s = {name: statistics.median(values["cpu"]) for name, values in times.items()}
    result: dict[str, Any] = {
        **{k: v for k, v in vars(settings).items()},
        "tokens": spec.num_tokens,
        "visible_tokens": visible,
        "decoder_target_tokens": target_tokens,
        "ours_step_s": step_s["ours"],
        "hf_step_s": step_s["hf"],
        "speedup": step_s["hf"] / step_s["ours"],
        "ours_step_times_s": times["ours"]["wall"],
        "hf_step_times_s": times["hf"]["wall"],
        # process CPU seconds per step: steadier than wall time when other processes share the cores
        "ours_cpu_s": cpu_s["ours"],
        "hf_cpu_s": cpu_s["hf"],
        "speedup_cpu_time": cpu_s["hf"] / cpu_s["ours"],
        "memory_kind": "cuda_peak_allocated" if device.type == "cuda" else "cpu_saved_activations",
        "ours_memory_bytes": memory["ours"],
        "hf_memory_bytes": memory["hf"],
        "ours_gflop_per_step": flops["ours"] / 1e9,
        "hf_gflop_per_step": flops["hf"] / 1e9,
        "threads": torch.get_num_threads(),
        "device_name": _device_name(device),
    }
    peak = peak_tflops(result["device_name"], settings.dtype) if device.type == "cuda" else None
    for name in ("ours", "hf"):
        result[f"{name}_tflops"] = flops[name] / step_s[name] / 1e12
        result[f"{name}_mfu"] = result[f"{name}_tflops"] / peak if peak else None
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()
