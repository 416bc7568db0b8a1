"""Analytic FLOP count of a VideoMAE training step, for achieved TFLOP/s and MFU.

Counts matrix multiplies only (2 FLOPs per multiply-add), which is what peak TFLOP/s figures
measure: per transformer block on n tokens of width d with MLP width m:
qkv + projection 8·n·d², MLP 4·n·d·m, attention scores and weighted sum 4·n²·d.
A training step costs three forwards (backward ≈ twice the forward).
"""

from __future__ import annotations

from typing import Optional

from pretrain.models.vit import ArchSpec

TRAIN_FLOPS_PER_FORWARD = 3

# Dense bf16 peak TFLOP/s per device, matched against torch.cuda.get_device_name().
KNOWN_PEAK_TFLOPS = {
    "H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0,
    "L4": 121.0, "V100": 125.0, "RTX 4090": 165.0, "RTX 3090": 71.0,
}


def block_flops(tokens: int, dim: int, mlp_dim: int) -> int:
    return 8 * tokens * dim * dim + 4 * tokens * dim * mlp_dim + 4 * tokens * tokens * dim


def videomae_forward_flops(spec: ArchSpec, visible_tokens: int, decoder_tokens: int, target_tokens: int) -> int:
    """Forward FLOPs of one clip: embed visible cubes, encoder, projection, decoder, pixel head."""
    embed = 2 * visible_tokens * spec.patch_dim * spec.dim
    encoder = spec.depth * block_flops(visible_tokens, spec.dim, spec.mlp_dim)
    to_decoder = 2 * visible_tokens * spec.dim * spec.decoder_dim
    decoder = spec.decoder_depth * block_flops(decoder_tokens, spec.decoder_dim, spec.decoder_mlp_dim)
    head = 2 * target_tokens * spec.decoder_dim * spec.patch_dim
    return embed + encoder + to_decoder + decoder + head


def videomae_train_flops(spec: ArchSpec, visible_tokens: int, decoder_tokens: int, target_tokens: int) -> int:
    return TRAIN_FLOPS_PER_FORWARD * videomae_forward_flops(spec, visible_tokens, decoder_tokens, target_tokens)


def device_peak_tflops(configured: Optional[float]) -> Optional[float]:
    """The configured peak, else a known GPU's dense bf16 peak, else None (no MFU on CPU)."""
    if configured:
        return configured
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name()
    for key, peak in KNOWN_PEAK_TFLOPS.items():
        if key in name:
            return peak
    return None
