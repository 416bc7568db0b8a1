"""`tubelet bench model --compile`: both models also under `torch.compile`, compiled the way
training compiles (`trainer.compile=true` calls `model.compile()`, in place, so parameter names
stay), each a copy of the eager model with the same weights, timed alternating with the others.

Figures: our compiled step against transformers eager and transformers compiled, and what
compiling gains each model. The first (warm-up) step of a compiled model includes compilation;
its time is reported apart and left out of the medians."""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from typing import Any

import torch

COMPILED = ("ours_compiled", "hf_compiled")


def compiled_twins(ours: torch.nn.Module, hf: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Deep copies compiled in place, as the pretraining stage compiles its model."""
    twins = {"ours_compiled": copy.deepcopy(ours), "hf_compiled": copy.deepcopy(hf)}
    for model in twins.values():
        model.compile()
    return twins


def compiled_loss_fns(
    twins: dict[str, torch.nn.Module],
    video: torch.Tensor,
    hf_video: torch.Tensor,
    mask: torch.Tensor,
    decoder_mask,
) -> dict[str, Callable[[], torch.Tensor]]:
    return {
        "ours_compiled": lambda: twins["ours_compiled"](video, mask, decoder_mask).loss,
        "hf_compiled": lambda: twins["hf_compiled"](hf_video, bool_masked_pos=mask).loss,
    }


def first_step_seconds(step: Callable[[], float], sync: Callable[[], None]) -> float:
    """Wall time of one step (for a compiled model's first step: compilation included)."""
    import time

    sync()
    start = time.perf_counter()
    step()
    sync()
    return time.perf_counter() - start


def compiled_figures(times: dict[str, dict[str, list[float]]], compile_s: dict[str, float]) -> dict[str, Any]:
    step_s = {name: statistics.median(values["wall"]) for name, values in times.items()}
    return {
        "ours_compiled_step_s": step_s["ours_compiled"],
        "hf_compiled_step_s": step_s["hf_compiled"],
        "ours_compile_s": compile_s["ours_compiled"],
        "hf_compile_s": compile_s["hf_compiled"],
        "speedup_compiled_vs_hf_eager": step_s["hf"] / step_s["ours_compiled"],
        "speedup_compiled_vs_hf_compiled": step_s["hf_compiled"] / step_s["ours_compiled"],
        "compile_gain_ours": step_s["ours"] / step_s["ours_compiled"],
        "compile_gain_hf": step_s["hf"] / step_s["hf_compiled"],
    }
