"""Attention of our shapes runs on SDPA's fused kernels (flash or memory-efficient), forward and
backward, in bf16: with SDPA restricted to one of them, a shape only the math fallback handles
would raise 'No available kernel'. The restriction itself is checked to be strict."""

from __future__ import annotations

import pytest
import torch

from pretrain.config import load_config
from pretrain.models import build_classifier, build_pretraining_model
from pretrain.smoke.kernels import fused_sdpa_step, videomae_inputs

pytestmark = pytest.mark.gpu

VIT_B = ("model.size=b", "model.img_size=224", "model.num_frames=16")


@pytest.mark.parametrize("backend", ["FLASH_ATTENTION", "EFFICIENT_ATTENTION"])
def test_pretraining_attention_runs_on_a_fused_kernel(backend):
    config = load_config("pretrain/tiny", [*VIT_B, "mask.ratio=0.9"])
    model = build_pretraining_model(config.model).cuda().train()
    error = fused_sdpa_step(
        model, videomae_inputs(model.spec, 2, 0.9, torch.device("cuda")), backends=(backend,)
    )
    assert error is None, error


def test_pretraining_with_decoder_masking_runs_on_a_fused_kernel():
    config = load_config("pretrain/tiny", [*VIT_B, "mask.ratio=0.9", "mask.decoder_ratio=0.5"])
    model = build_pretraining_model(config.model).cuda().train()
    from pretrain.masking import batch_masks

    inputs = videomae_inputs(model.spec, 2, 0.9, torch.device("cuda"))
    mask, decoder_mask = batch_masks(2, model.spec.grid, 0.9, 0.5, generator=torch.Generator().manual_seed(0))
    inputs.update(mask=mask.cuda(), decoder_mask=decoder_mask.cuda())
    assert fused_sdpa_step(model, inputs) is None


def test_finetuning_attention_over_all_tokens_runs_on_a_fused_kernel():
    from torch.nn.attention import SDPBackend, sdpa_kernel

    config = load_config("finetune/tiny", list(VIT_B))
    model = build_classifier(config.model, num_classes=101).cuda().train()
    video = torch.randn(2, 3, 16, 224, 224, device="cuda")  # (B, C, T, H, W), 1568 tokens
    with (
        sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]),
        torch.autocast("cuda", torch.bfloat16),
    ):
        logits = model(video)
    logits.float().sum().backward()
    assert logits.shape == (2, 101) and torch.isfinite(logits).all()


def test_the_kernel_restriction_is_strict():
    """Flash attention has no fp32 kernel: restricted to it, fp32 inputs must fail, so the checks
    above would notice a fallback to the math path."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q = torch.randn(2, 12, 160, 64, device="cuda")  # (B, H, N, hd) fp32
    with pytest.raises(RuntimeError), sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        torch.nn.functional.scaled_dot_product_attention(q, q, q)


def test_the_stages_adamw_is_fused_on_cuda():
    from pretrain.smoke.kernels import stage_adamw_is_fused

    model = build_pretraining_model(load_config("pretrain/tiny").model).cuda()
    assert stage_adamw_is_fused(model)
