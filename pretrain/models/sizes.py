"""Named model sizes in one dict (encoder depth/width/heads, decoder width/heads/depth).

Numbers follow the VideoMAE paper and VideoMAE V2 (g); `tiny` exists for tests and CPU runs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSize:
    depth: int
    dim: int
    heads: int
    decoder_dim: int
    decoder_heads: int
    decoder_depth: int = 4
    patch_size: int = 16
    mlp_ratio: float = 4.0
    temporal_depth: int = 4
    """Blocks of ViViT's temporal transformer (factorised encoder; ViViT-B/L use 4)."""


SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(
        depth=2, dim=64, heads=2, decoder_dim=32, decoder_heads=2, decoder_depth=1, temporal_depth=1
    ),
    "s": ModelSize(depth=12, dim=384, heads=6, decoder_dim=192, decoder_heads=3),
    "b": ModelSize(depth=12, dim=768, heads=12, decoder_dim=384, decoder_heads=6),
    # The official ViT-L pretraining script uses a 12-block decoder; other codebases use 4.
    "l": ModelSize(depth=24, dim=1024, heads=16, decoder_dim=512, decoder_heads=8, decoder_depth=12),
    "h": ModelSize(depth=32, dim=1280, heads=16, decoder_dim=640, decoder_heads=8),
    "g": ModelSize(
        depth=40, dim=1408, heads=16, decoder_dim=512, decoder_heads=8, patch_size=14, mlp_ratio=48 / 11
    ),
}
