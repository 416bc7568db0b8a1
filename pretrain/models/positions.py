"""Learned position / time tables (TimeSformer, ViViT, a vit with a class token) resized to
another token grid, for weights trained at another frame count or image size.

Fixed sin-cos tables are recomputed instead and never stored. A learned table is interpolated:
space bicubically over (H', W'), time linearly over T' (the class token's row is kept as is), and
the caller logs that it happened. The token order inside a joint table is (T', H', W').
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import get_backbone

Tensors = dict[str, torch.Tensor]


def _resize_grid(table: torch.Tensor, source: tuple[int, ...], target: tuple[int, ...]) -> torch.Tensor:
    """(1, prod(source), D) laid out on `source` -> (1, prod(target), D) on `target` (1-3 dims)."""
    d = table.shape[-1]
    grid = table.reshape(1, *source, d).movedim(-1, 1)  # (1, D, *source)
    mode = {1: "linear", 2: "bicubic", 3: "trilinear"}[len(source)]
    resized = F.interpolate(grid.float(), size=target, mode=mode, align_corners=False)
    return resized.movedim(1, -1).reshape(1, -1, d).to(table.dtype)


def _with_prefix(
    table: torch.Tensor, prefix: int, source: tuple[int, ...], target: tuple[int, ...]
) -> torch.Tensor:
    """Keep the first `prefix` rows (a class token's), resize the rest."""
    return torch.cat([table[:, :prefix], _resize_grid(table[:, prefix:], source, target)], dim=1)


def resize_learned_tables(
    state: Tensors, source: ArchSpec, target: ArchSpec, prefix: str = "encoder."
) -> list[str]:
    """Resize (in place) the learned tables in `state` from `source`'s token grid to `target`'s;
    returns the names resized (empty when the grids agree)."""
    resized = []
    wanted = get_backbone(target.backbone).learned_tables(target)
    given = get_backbone(source.backbone).learned_tables(source)
    for name, (rows, grid) in wanted.items():
        key = prefix + name
        if key not in state or name not in given or given[name][1] == grid:
            continue
        state[key] = _with_prefix(state[key], rows, given[name][1], grid)
        resized.append(f"{key} {'x'.join(map(str, given[name][1]))} -> {'x'.join(map(str, grid))}")
    return resized
