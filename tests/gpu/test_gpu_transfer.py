"""Batches on their way to the GPU: YUV 4:2:0 converted on the device equals the CPU conversion,
and the loader of a GPU run hands out pinned uint8 batches that copy non-blocking unchanged."""

from __future__ import annotations

import pytest
import torch

from pretrain.config import load_config
from pretrain.data.augment.transforms import yuv420_to_rgb
from pretrain.train.module import model_video

pytestmark = pytest.mark.gpu


def _yuv_batch(seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(
        0, 256, (2, 8, 96 * 3 // 2, 128), dtype=torch.uint8, generator=generator
    )  # (B, T, H*3/2, W)


def test_yuv420_converted_on_the_gpu_equals_the_cpu_conversion():
    video = _yuv_batch()
    on_cpu, on_gpu = yuv420_to_rgb(video), yuv420_to_rgb(video.cuda()).cpu()  # (B, 3, T, H, W) 0..255
    assert on_gpu.shape == on_cpu.shape == (2, 3, 8, 96, 128)
    difference = (on_gpu - on_cpu).abs()
    # Rounded to whole grey levels; a fused multiply-add on the GPU may tip an exact .5 tie.
    assert float(difference.max()) <= 1.0
    assert float((difference > 0).float().mean()) <= 1e-3


def test_the_model_input_from_a_yuv_batch_matches_on_cpu_and_gpu():
    video = _yuv_batch(1)
    on_cpu = model_video({"video": video})
    on_gpu = model_video({"video": video.cuda()}).cpu()  # normalized float (B, 3, T, H, W)
    assert on_gpu.dtype == torch.float32
    assert torch.allclose(on_gpu, on_cpu, atol=1.0 / (255 * 0.225) + 1e-5)


def test_gpu_runs_get_pinned_uint8_batches_that_copy_non_blocking(motion_shards):
    from pretrain.data.streams.pretrain_stream import build_pretrain_loader

    config = load_config(
        "pretrain/tiny",
        [
            f"data.shards={motion_shards}",
            "data.split=train",
            "trainer.accelerator=gpu",
            "trainer.precision=bf16-mixed",
            "data.num_workers=1",
        ],
    )
    batch = next(iter(build_pretrain_loader(config, rank=0, world_size=1)))
    video = batch["video"]  # YUV 4:2:0 uint8 (B, T, H*3/2, W)
    assert video.dtype == torch.uint8 and video.dim() == 4 and video.is_pinned()
    copied = video.to("cuda", non_blocking=True)
    torch.cuda.current_stream().synchronize()
    assert torch.equal(copied.cpu(), video)


def test_cpu_runs_do_not_pin(motion_shards):
    from pretrain.data.streams.loader import pin_batches

    assert pin_batches("gpu") and pin_batches("auto") and not pin_batches("cpu")


def test_lightning_moves_batches_to_the_gpu_with_non_blocking_copies(monkeypatch):
    """The copy a pinned batch needs to be asynchronous is the one Lightning issues."""
    from lightning_fabric.utilities.apply_func import move_data_to_device

    calls, original = [], torch.Tensor.to

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("non_blocking"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    batch = {
        "video": _yuv_batch().pin_memory(),
        "mask": torch.ones(2, 16, dtype=torch.bool).pin_memory(),
        "key": ["a", "b"],
    }
    moved = move_data_to_device(batch, torch.device("cuda"))
    assert calls == [True, True]
    assert moved["video"].is_cuda and torch.equal(moved["video"].cpu(), batch["video"])
