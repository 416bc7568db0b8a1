"""Saliency for every backbone: the hooks see every attention module's real input (recomputed
attention reproduces the module's output), divided attention mixes time only within a position,
and rollout and Grad-CAM give non-uniform maps over the grid for joint, divided (TimeSformer) and
factorised (ViViT) encoders. Backbones not in this checkout are skipped."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pretrain.evaluate import rollout
from pretrain.evaluate.saliency import attention_rollout, gradient_saliency
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import VideoClassifier

BACKBONES = ("vit", "timesformer", "vivit")


def tiny_classifier(backbone: str) -> VideoClassifier:
    extra = {} if backbone == "vit" else {"backbone": backbone}
    try:
        spec = ArchSpec.from_size("tiny", img_size=32, num_frames=8, tubelet_size=2, patch_size=8, **extra)
    except TypeError:
        pytest.skip(f"backbone {backbone} is not in this checkout")
    torch.manual_seed(0)
    return VideoClassifier(spec, 3).eval()


def module_output(attn, x: torch.Tensor) -> torch.Tensor:
    """Attention recomputed per head from the recorded input, as the hooks see it."""
    g, length, d = x.shape
    bias = (
        attn.qkv.bias
        if attn.q_bias is None
        else torch.cat([attn.q_bias, torch.zeros_like(attn.q_bias), attn.v_bias])
    )
    q, k, v = F.linear(x, attn.qkv.weight, bias).view(g, length, 3, attn.heads, -1).permute(2, 0, 3, 1, 4)
    probs = (q @ k.transpose(-1, -2) / (d // attn.heads) ** 0.5).softmax(-1)  # (G, H, L, L)
    return attn.proj((probs @ v).transpose(1, 2).reshape(g, length, d))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_recorded_inputs_reproduce_every_attention_output(backbone):
    model = tiny_classifier(backbone)
    outputs = {}
    hooks = [
        m.register_forward_hook(lambda m, a, out: outputs.__setitem__(m, out))
        for m in model.encoder.modules()
        if hasattr(m, "qkv")
    ]
    with torch.no_grad(), rollout.recorded_inputs(model.encoder) as records:
        model(torch.randn(1, 3, 8, 32, 32))
    for hook in hooks:
        hook.remove()
    assert len(records) == len(outputs) >= model.spec.depth
    for attn, x in records.items():
        with torch.no_grad():
            assert torch.allclose(module_output(attn, x), outputs[attn], atol=1e-5)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_rollout_and_gradient_maps_cover_the_grid(backbone):
    model = tiny_classifier(backbone)
    video = torch.randn(1, 3, 8, 32, 32)
    rolled, gradient = attention_rollout(model, video)[1], gradient_saliency(model, video)[1]
    for scores in (rolled, gradient):
        assert scores.shape == model.spec.grid == (4, 4, 4)
        assert scores.min() >= 0 and abs(float(scores.sum()) - 1) < 1e-5
    assert rolled.std() > 1e-5  # random weights: near uniform, but the maps did reach the tokens
    assert gradient.max() > 1.5 / gradient.numel()  # not the uniform fallback: gradients reached the tokens


def test_divided_attention_mixes_time_within_a_position_only():
    model = tiny_classifier("timesformer")
    with torch.no_grad(), rollout.recorded_inputs(model.encoder) as records:
        model(torch.randn(1, 3, 8, 32, 32))
    time_map, space_map = rollout.divided_maps(model.encoder.blocks[0], records, slices=4)
    positions = 16
    index = torch.arange(1, 1 + 4 * positions)
    same_position = (index[:, None] - index[None, :]) % positions == 0
    assert time_map[1:, 1:][~same_position].abs().max() == 0
    same_slice = (index[:, None] - 1) // positions == (index[None, :] - 1) // positions
    assert space_map[1:, 1:][~same_slice].abs().max() == 0
    assert torch.allclose(time_map.sum(-1), torch.ones(65)) and torch.allclose(
        space_map.sum(-1), torch.ones(65)
    )
