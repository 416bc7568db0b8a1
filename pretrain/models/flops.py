"""Analytic FLOP counts of VideoMAE, for throughput and MFU figures (the accelerator peaks they are
set against live in `pretrain.runtime.device_peaks`).

A matmul of (m, k) by (k, n) counts 2*m*k*n FLOPs; attention counts QK^T and AV (4*n^2*d per
block); norms, activations and softmax are left out (they are memory-bound and small). A training
step counts 3x the forward (backward = 2x forward), the usual convention for MFU.
"""

from __future__ import annotations

from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import get_backbone


def encoder_forward_flops(spec: ArchSpec, tokens: int) -> int:
    """One clip's encoder forward on `tokens` patch tokens (patch embedding included)."""
    return get_backbone(spec.backbone).flops(spec, tokens)


def block_flops(tokens: int, dim: int, mlp_dim: int, queries: int | None = None) -> int:
    """One transformer block's forward on `tokens` tokens of which `queries` (default all) produce
    outputs: qkv for every token, attention rows, proj and MLP only for the queries."""
    queries = tokens if queries is None else queries
    qkv = 2 * tokens * 3 * dim * dim
    attention = 4 * queries * tokens * dim  # QK^T and AV
    return qkv + attention + 2 * queries * (dim * dim + 2 * dim * mlp_dim)


def videomae_forward_flops(
    spec: ArchSpec, visible: int, targets: int, embedded: int | None = None, trimmed_last_block: bool = True
) -> int:
    """Forward FLOPs of one clip: `visible` encoder tokens, `targets` reconstructed tokens (the
    decoder sees visible + targets), `embedded` tokens through the patch embedding (default visible;
    transformers embeds every token). With `trimmed_last_block` (ours) the last decoder block
    computes outputs only for the targets; transformers computes all and drops the visible ones."""
    embedded = visible if embedded is None else embedded
    decoder_tokens = visible + targets
    flops = 2 * (embedded - visible) * spec.patch_dim * spec.dim  # embedded beyond the visible ones
    flops += encoder_forward_flops(spec, visible)  # the backbone's encoder, its embedding included
    flops += 2 * visible * spec.dim * spec.decoder_dim  # encoder_to_decoder
    flops += (spec.decoder_depth - 1) * block_flops(decoder_tokens, spec.decoder_dim, spec.decoder_mlp_dim)
    last_queries = targets if trimmed_last_block else decoder_tokens
    flops += block_flops(decoder_tokens, spec.decoder_dim, spec.decoder_mlp_dim, last_queries)
    return flops + 2 * targets * spec.decoder_dim * spec.patch_dim  # head


def classifier_forward_flops(spec: ArchSpec, num_classes: int) -> int:
    """Forward FLOPs of one clip through the classifier: every token encoded, pooled, the head."""
    return encoder_forward_flops(spec, spec.num_tokens) + 2 * spec.dim * num_classes


TRAINING_FACTOR = 3  # forward + backward (backward ≈ 2 forwards): the one place this factor lives


def training_flops(forward_flops: int) -> int:
    """FLOPs of a training step on what costs `forward_flops` forward."""
    return TRAINING_FACTOR * forward_flops
