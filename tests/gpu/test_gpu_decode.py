"""data.decode_device=cuda on a GPU: NVDEC's frames match PyAV's, the device crops match the CPU
loader's batch, and the pretraining stage trains from GPU-decoded batches. Needs PyNvVideoCodec
(`pip install 'tubelet[gpu-decode]'`, or `bash tests/gpu/fetch_wheels.sh --gpu-decode`)."""

from __future__ import annotations

import math
import time

import pytest
import torch
from gpu_helpers import gpu_stage_overrides

from pretrain.bench.data import read_samples
from pretrain.config import load_config
from pretrain.data.streams.pretrain_stream import build_pretrain_loader
from pretrain.data.video.gpu_decode import decode_nv12, pyav_nv12

pytestmark = pytest.mark.gpu
pytest.importorskip("PyNvVideoCodec")

MAX_MEAN_LEVEL_DIFFERENCE = 0.5
"""H.264 decoding is exact by the standard; NVDEC and libavcodec may still differ at a few pixels."""


def _first_sample(shards) -> dict:
    return sorted(read_samples(str(shards), limit=10), key=lambda sample: sample["key"])[0]


def test_nvdec_frames_match_pyav(train_encoded_shards, gpu_figures):
    sample = _first_sample(train_encoded_shards)
    indices = [0, 3, 4, 9, 17]
    gpu = decode_nv12(sample["video"], indices, torch.device("cuda")).cpu()  # (5, H*3/2, W)
    cpu = pyav_nv12(sample["video"], indices, "cpu")
    assert gpu.shape == cpu.shape
    difference = (gpu.int() - cpu.int()).abs().float()
    gpu_figures["nvdec_vs_pyav_mean_abs_level"] = round(float(difference.mean()), 4)
    assert float(difference.mean()) <= MAX_MEAN_LEVEL_DIFFERENCE


def test_gpu_decoded_batch_matches_the_cpu_batch(train_encoded_shards, gpu_figures):
    overrides = [f"data.shards={train_encoded_shards}", "data.split=all", "data.num_workers=0"]
    batches = {}
    for device in ("cpu", "cuda"):
        config = load_config("pretrain/tiny", [*overrides, f"data.decode_device={device}"])
        batches[device] = next(iter(build_pretrain_loader(config, 0, 1)))
    started = time.perf_counter()
    video = batches["cuda"]["video"].decode(torch.device("cuda"))  # (B, T, H*3/2, W)
    torch.cuda.synchronize()
    gpu_figures["gpu_decode_batch_s"] = round(time.perf_counter() - started, 4)
    assert torch.equal(batches["cuda"]["mask"], batches["cpu"]["mask"])
    assert (video.cpu().int() - batches["cpu"]["video"].int()).abs().float().mean() <= 1.0


def test_pretraining_trains_from_gpu_decoded_batches(train_encoded_shards, tmp_path):
    from pretrain.train.entry import run_stage

    config = load_config(
        "pretrain/tiny",
        gpu_stage_overrides(train_encoded_shards, tmp_path, "gpu-decode")
        + ["data.split=all", "data.decode_device=cuda", "trainer.max_steps=3"],
    )
    result = run_stage(config)
    assert result.global_step == 3
    assert math.isfinite(result.metrics["train/loss"])
