"""`data.decode_device=cuda`, the parts a CPU can check: the config errors, and that clips drawn for
the GPU and cropped from NV12 frames on the device equal the CPU loader's YUV 4:2:0 batch (NVDEC
itself is replaced by PyAV frames rearranged as NV12; tests/gpu/test_gpu_decode.py runs NVDEC)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pretrain.bench.data import read_samples
from pretrain.config import ConfigError, load_config
from pretrain.data.augment.clips import ClipSettings, MaskSettings, pretrain_clips
from pretrain.data.streams.batching import collate
from pretrain.data.streams.pipeline_stages import seeded_rng
from pretrain.data.streams.pretrain_stream import build_pretrain_loader
from pretrain.data.video.decode import decode_window
from pretrain.data.video.gpu_decode import EncodedBatch, crop_nv12_to_i420, pyav_nv12

MAX_LEVEL_DIFFERENCE = 1
"""Torch's float bilinear vs OpenCV's 11-bit fixed-point bilinear: at most one grey level apart."""


def test_cuda_decoding_is_a_config_error_without_cuda(train_encoded_shards):
    config = load_config(
        None, [f"data.shards={train_encoded_shards}", "data.split=all", "data.decode_device=cuda"]
    )
    with pytest.raises(ConfigError, match=r"^data.decode_device=cuda needs a CUDA GPU"):
        build_pretrain_loader(config, 0, 1)
    with pytest.raises(ConfigError, match="data.decode_device='gpu' is not allowed"):
        load_config(None, ["data.decode_device=gpu"])
    with pytest.raises(ConfigError, match="data.decode_device=cuda needs data.normalize_on_device=true"):
        load_config(None, ["data.decode_device=cuda", "data.normalize_on_device=false"])


def test_nv12_crops_equal_the_cpu_loaders_yuv420_crops(train_encoded_shards):
    sample = _samples(train_encoded_shards)[0]
    frames = decode_window(sample["video"], list(range(8)))
    nv12 = pyav_nv12(sample["video"], range(8), "cpu")  # (8, H*3/2, W)
    for box, size, flip in (((0, 0, 256, 256), (224, 224), False), ((32, 58, 168, 192), (112, 112), True)):
        expected = torch.empty((8, size[0] * 3 // 2, size[1]), dtype=torch.uint8)
        frames.render_yuv420(box, size, flip, expected)
        got = crop_nv12_to_i420(nv12, box, size, flip)
        assert got.shape == expected.shape
        assert (got.int() - expected.int()).abs().max() <= MAX_LEVEL_DIFFERENCE


def test_gpu_route_batch_equals_the_cpu_batch(train_encoded_shards):
    settings = ClipSettings(num_frames=16, stride=1, size=224)
    masks = MaskSettings(grid=(8, 14, 14), ratio=0.9)
    batches = {}
    for device in ("cpu", "cuda"):
        clips = []
        for index, sample in enumerate(_samples(train_encoded_shards)):
            chosen = dataclasses.replace(settings, decode_device=device)
            clips += pretrain_clips(sample, seeded_rng(0, index), chosen, masks, num_sample=2)
        batches[device] = collate(clips, normalize=False, yuv420=True)
    encoded = batches["cuda"]["video"]
    assert isinstance(encoded, EncodedBatch) and encoded.shape == batches["cpu"]["video"].shape
    decoded_videos = []

    def counting(data, indices, device):
        decoded_videos.append(len(indices))
        return pyav_nv12(data, indices, device)

    video = encoded.decode(torch.device("cpu"), decode=counting)  # (B, T, H*3/2, W)
    assert len(decoded_videos) == 2  # one decode per video, shared by its num_sample clips
    assert (video.int() - batches["cpu"]["video"].int()).abs().max() <= MAX_LEVEL_DIFFERENCE
    assert torch.equal(batches["cuda"]["mask"], batches["cpu"]["mask"])


def _samples(shards) -> list[dict]:
    return sorted(read_samples(str(shards), limit=10), key=lambda sample: sample["key"])
