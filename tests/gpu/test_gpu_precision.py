"""bf16 autocast against fp32 (no TF32) for every backbone the config allows: one forward/backward
step, a short training curve, and the peak memory of a ViT-B-shaped step.

Tolerances (bf16 keeps 8 mantissa bits, ~4e-3 relative per rounding): loss within 2% relative,
gradients within 10% in global relative L2 norm with cosine similarity >= 0.99, and a 10-step
AdamW curve on one batch within 5% of fp32 at every step."""

from __future__ import annotations

import pytest
import torch

from pretrain.models import build_pretraining_model
from pretrain.smoke.kernels import videomae_inputs
from pretrain.smoke.plan import backbone_names

pytestmark = pytest.mark.gpu

BACKBONES = backbone_names()
SMALL = ("model.size=s", "model.img_size=112", "model.num_frames=16")
LOSS_RTOL, GRAD_RTOL, GRAD_COSINE, CURVE_RTOL = 2e-2, 1e-1, 0.99, 5e-2


def _model_and_inputs(backbone: str, *extra: str, batch: int = 2):
    from gpu_helpers import backbone_config

    config = backbone_config(backbone, *SMALL, *extra)
    torch.manual_seed(0)
    model = build_pretraining_model(config.model).cuda().train()
    return model, videomae_inputs(model.spec, batch, config.mask.ratio, torch.device("cuda"))


def _loss_and_grads(model, inputs, dtype):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        loss = model(**inputs).loss
    loss.backward()
    grads = torch.cat([p.grad.flatten().float() for p in model.parameters() if p.grad is not None])
    return float(loss), grads


@pytest.mark.parametrize("backbone", BACKBONES)
def test_bf16_forward_backward_matches_fp32(backbone, exact_fp32, gpu_figures):
    model, inputs = _model_and_inputs(backbone)
    loss32, grads32 = _loss_and_grads(model, inputs, torch.float32)
    loss16, grads16 = _loss_and_grads(model, inputs, torch.bfloat16)
    grad_error = float((grads16 - grads32).norm() / grads32.norm())
    cosine = float(torch.nn.functional.cosine_similarity(grads16, grads32, dim=0))
    gpu_figures[f"bf16_vs_fp32/{backbone}"] = {
        "loss_fp32": loss32,
        "loss_bf16": loss16,
        "grad_rel_error": grad_error,
        "grad_cosine": cosine,
    }
    assert abs(loss16 - loss32) <= LOSS_RTOL * abs(loss32)
    assert grad_error <= GRAD_RTOL and cosine >= GRAD_COSINE


@pytest.mark.parametrize("backbone", BACKBONES)
def test_bf16_training_curve_tracks_fp32(backbone, exact_fp32, gpu_figures):
    curves = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        model, inputs = _model_and_inputs(backbone)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        curves[name] = []
        for _ in range(10):
            loss, _ = _loss_and_grads(model, inputs, dtype)
            optimizer.step()
            curves[name].append(loss)
    gpu_figures[f"loss_curve/{backbone}"] = curves
    assert min(curves["fp32"][1:]) < curves["fp32"][0]  # it trains at all
    for loss32, loss16 in zip(curves["fp32"], curves["bf16"]):
        assert abs(loss16 - loss32) <= CURVE_RTOL * abs(loss32)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_peak_memory_of_a_vit_b_shaped_step(backbone, gpu_figures):
    """ViT-B, 16×224², 90% mask, batch 8, bf16 autocast: the figure the README reports per backbone."""
    from gpu_helpers import backbone_config

    config = backbone_config(
        backbone, "model.size=b", "model.img_size=224", "model.num_frames=16", "mask.ratio=0.9"
    )
    model = build_pretraining_model(config.model).cuda().train()
    inputs = videomae_inputs(model.spec, 8, 0.9, torch.device("cuda"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(2):  # the second step holds the optimizer state too
        _loss_and_grads(model, inputs, torch.bfloat16)
        optimizer.step()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30
    weights = sum(p.numel() for p in model.parameters()) * 4 / 2**30
    gpu_figures[f"peak_memory_gib/{backbone}-b-16x224-batch8-bf16"] = round(peak, 3)
    assert (
        4 * weights < peak < 60
    )  # weights + grads + AdamW state, plus activations; far from the card's size
