"""Shared fixtures of the GPU tests (`pytest -m gpu`; the root conftest skips them without CUDA).

Figures measured on the way (peak memory per backbone, bf16-vs-fp32 curves, the checkpointing
saving) are collected and written as JSON to $TUBELET_GPU_FIGURES when it is set."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gpu_figures():
    figures: dict = {}
    yield figures
    target = os.environ.get("TUBELET_GPU_FIGURES")
    if target and figures:
        Path(target).write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def exact_fp32():
    """fp32 references without TF32 (its 10-bit mantissa would blur fp32 against bf16)."""
    import torch

    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture(scope="session")
def motion_shards(tmp_path_factory) -> Path:
    """The smoke run's labeled motion dataset, small: 4 classes × (1 test + 3 train groups)."""
    from pretrain.data.generated.motion_dataset import write_motion_dataset
    from pretrain.data.shards import BuildOptions, build_shards

    root = tmp_path_factory.mktemp("motion")
    write_motion_dataset(root / "raw", groups=(1, 8, 9, 10), num_frames=20)
    build_shards("ucf101", str(root / "raw"), str(root / "shards"), BuildOptions(shard_size_mb=1))
    return root / "shards"
