"""Gradient-weighted attention relevance: its scores on hand-set attention maps and gradients,
worked out by hand for joint, divided (TimeSformer) and factorised (ViViT) attention; and on real
tiny classifiers, hooks that leave the model's output unchanged and maps that reach the grid."""

from __future__ import annotations

import pytest
import torch

from pretrain.evaluate import relevance
from pretrain.evaluate.saliency import attention_relevance
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import VideoClassifier


def maps(*rows: tuple[int, int, float], size: int) -> torch.Tensor:
    """A (size, size) weighted map with the given (query, key, value) entries, zero elsewhere."""
    out = torch.zeros(size, size)
    for query, key, value in rows:
        out[query, key] = value
    return out


def test_weighted_keeps_the_positive_gradient_times_attention_averaged_over_heads():
    attention = torch.full((2, 3, 3), 0.5)  # (H, L, L)
    gradient = torch.zeros(2, 3, 3)
    gradient[0, 0, 1], gradient[0, 0, 2], gradient[1, 0, 2] = 0.8, -0.4, 1.2  # head 0, head 1
    expected = maps((0, 1, 0.2), (0, 2, 0.3), size=3)  # (0.4 + 0) / 2, (0 + 0.6) / 2
    assert torch.allclose(relevance.weighted(attention, gradient), expected)
    assert torch.equal(relevance.weighted(attention, None), torch.zeros(3, 3))


def test_joint_relevance_composes_blocks_from_the_class_token():
    """Block 1: cls <- t1 0.2, cls <- t2 0.3, t1 <- t2 1.0; block 2: cls <- t1 0.5. R = (I + Ā2)(I + Ā1):
    t1 = 0.2 + 0.5, t2 = 0.3 + 0.5 * 1.0 (through t1)."""
    first = maps((0, 1, 0.2), (0, 2, 0.3), (1, 2, 1.0), size=3)
    second = maps((0, 1, 0.5), size=3)
    scores = relevance.joint_relevance([first, second], torch.tensor([1.0, 0.0, 0.0]), prefix=1)
    assert torch.allclose(scores, torch.tensor([0.7, 0.8]))


def test_mean_pooled_readout_weighs_each_output_token_by_gradient_times_itself():
    tokens, gradient = torch.tensor([[1.0, 2.0], [3.0, -1.0]]), torch.tensor([[1.0, 1.0], [-1.0, 0.0]])
    weights = relevance.token_weights(tokens, gradient)
    assert torch.equal(weights, torch.tensor([3.0, 0.0]))  # 1 + 2, (-3)⁺
    scores = relevance.joint_relevance([maps((0, 1, 0.5), size=2)], weights, prefix=0)
    assert torch.allclose(scores, torch.tensor([3.0, 1.5]))  # t0 itself; t1 through t0's attention


def test_divided_relevance_goes_through_time_then_space():
    """T' = 2 slices of one position: tokens (t0, t1) after the class token. Time: t0 <- t1 0.4;
    space: class copy of slice 0 <- t0 0.3, of slice 1 <- t1 0.1. Class row: t0 0.3,
    t1 0.1 + 0.3 * 0.4."""
    temporal = maps((0, 1, 0.4), size=2)[None]  # (n = 1, T', T')
    spatial = torch.stack([maps((0, 1, 0.3), size=2), maps((0, 1, 0.1), size=2)])  # (T', 1 + n, 1 + n)
    scores = relevance.divided_relevance([(temporal, spatial)])
    assert torch.allclose(scores, torch.tensor([0.3, 0.22]))


def test_factorised_relevance_reads_the_pooled_tokens_and_the_slice_summaries():
    """T' = 2 slices of n = 2 positions. Spatial: slice 0 cls <- j0 0.5 and j1 <- j0 0.4; slice 1
    cls <- j1 0.2. Temporal: cls <- slice 0 0.3, slice 1 <- slice 0 0.6. Readout: spatial parts of
    (0, j0), (0, j1), (1, j1) weigh 1, 1, 2; temporal part of slice 1 weighs 1.
    (0, j0) = 1 + 0.4 (via j1) + 0.6 * 0.5 (slice 1 <- summary 0 <- j0); (0, j1) = 1;
    (1, j0) = 0; (1, j1) = 2 + 1 * 0.2 (its own slice's summary)."""
    spatial = torch.stack(
        [maps((0, 1, 0.5), (2, 1, 0.4), size=3), maps((0, 2, 0.2), size=3)]
    )  # (T', 1 + n, 1 + n)
    temporal = maps((0, 1, 0.3), (2, 1, 0.6), size=3)  # (1 + T', 1 + T')
    scores = relevance.factorised_relevance(
        [spatial], [temporal], torch.tensor([[1.0, 1.0], [0.0, 2.0]]), torch.tensor([0.0, 1.0])
    )
    assert torch.allclose(scores, torch.tensor([1.7, 1.0, 0.0, 2.2]))


@pytest.mark.parametrize("backbone", ["vit", "timesformer", "vivit"])
def test_relevance_hooks_keep_the_output_and_reach_the_grid(backbone):
    spec = ArchSpec.from_size(
        "tiny", img_size=32, num_frames=8, tubelet_size=2, patch_size=8, backbone=backbone
    )
    torch.manual_seed(0)
    model = VideoClassifier(spec, 3, head_init_scale=1.0).eval()
    video = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad():
        plain = model(video)
        with relevance.differentiable_attention(model.encoder):
            hooked = model(video)
    assert torch.allclose(plain, hooked, atol=1e-5)
    logits, scores, target = attention_relevance(model, video)
    assert target == int(plain.argmax()) and torch.allclose(logits, plain[0], atol=1e-5)
    assert scores.shape == spec.grid == (4, 4, 4) and scores.min() >= 0
    assert abs(float(scores.sum()) - 1) < 1e-5 and scores.max() > 1.5 / scores.numel()  # not uniform
    assert all(p.grad is None for p in model.parameters())  # gradients cleared
