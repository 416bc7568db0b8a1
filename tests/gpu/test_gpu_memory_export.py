"""Activation checkpointing lowers the peak memory of a ViT-B fine-tuning step by a measured amount,
and a classifier fine-tuned on the GPU exports to a file whose CPU logits equal the GPU model's."""

from __future__ import annotations

import pytest
import torch
from gpu_helpers import gpu_stage_overrides

from pretrain.config import load_config
from pretrain.models import build_classifier

pytestmark = pytest.mark.gpu

# Checkpointed blocks keep only their inputs: at 1568 tokens the saving is most of the activations.
MIN_SAVING = 0.3


def _peak_step_gib(grad_checkpointing: bool) -> float:
    config = load_config(
        "finetune/tiny",
        [
            "model.size=b",
            "model.img_size=224",
            "model.num_frames=16",
            f"model.grad_checkpointing={str(grad_checkpointing).lower()}",
        ],
    )
    torch.manual_seed(0)
    model = build_classifier(config.model, num_classes=101).cuda().train()
    video = torch.randn(4, 3, 16, 224, 224, device="cuda")  # (B, C, T, H, W)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(video).float().logsumexp(-1).mean()
    loss.backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    del model, video, loss
    torch.cuda.empty_cache()
    return peak


def test_activation_checkpointing_lowers_peak_memory(gpu_figures):
    plain, checkpointed = _peak_step_gib(False), _peak_step_gib(True)
    gpu_figures["grad_checkpointing_peak_gib/vit-b-16x224-batch4-bf16"] = {
        "plain": round(plain, 3),
        "checkpointed": round(checkpointed, 3),
        "saving": round(1 - checkpointed / plain, 3),
    }
    assert checkpointed <= (1 - MIN_SAVING) * plain, (plain, checkpointed)


def test_a_gpu_finetuned_export_gives_the_same_logits_on_cpu(motion_shards, tmp_path, exact_fp32):
    from pretrain.train.entry import run_stage
    from pretrain.weights import export_checkpoint, load_finetuned

    config = load_config(
        "finetune/tiny",
        gpu_stage_overrides(motion_shards, tmp_path, "finetune")
        + ["trainer.max_steps=4", "trainer.checkpoint_every_steps=4"],
    )
    result = run_stage(config)
    assert result.global_step == 4
    export_checkpoint(result.last_checkpoint, tmp_path / "export")
    on_gpu = load_finetuned(result.last_checkpoint).model.cuda().eval()
    on_cpu = load_finetuned(tmp_path / "export").model.eval()
    video = torch.randn(3, 3, 8, 64, 64)  # (B, C, T, H, W) of the tiny recipe
    with torch.no_grad():
        cpu_logits, gpu_logits = on_cpu(video), on_gpu(video.cuda()).cpu()
    assert torch.allclose(cpu_logits, gpu_logits, rtol=1e-4, atol=1e-5), (cpu_logits - gpu_logits).abs().max()
