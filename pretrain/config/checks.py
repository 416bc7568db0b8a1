"""The schema's checks: one-line ConfigErrors naming the key, and the rule that ties the mask to the
token grid (a rule of three fields of two sections, so it lives beside the checks, not in a section)."""

from __future__ import annotations

import math
from typing import Any

from pretrain.errors import ConfigError


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def choice(key: str, value: Any, allowed: tuple) -> None:
    check(value in allowed, f"{key}={value!r} is not allowed; choose one of {list(allowed)}")


def in_open_unit(key: str, value: float) -> None:
    check(0.0 < value < 1.0, f"{key}={value} must be in the open interval (0, 1)")


def positive(key: str, value: float) -> None:
    check(value > 0, f"{key}={value} must be > 0")


def finite_positive(key: str, value: float) -> None:
    check(math.isfinite(value) and value > 0, f"{key}={value} must be a finite number > 0")


def always_dropped(grid: tuple[int, int, int], decoder_ratio: float) -> int:
    """Positions per time slice that the running-cell decoder mask drops in every slice: each 2x2 cell
    drops `int(4 * ratio)` of its 4 positions in a run that shifts by one per slice, so with T' slices
    `dropped - T' + 1` positions per cell (if positive) are never reconstructed."""
    per_cell = int(4 * decoder_ratio)
    return max(0, per_cell - grid[0] + 1) * (grid[1] * grid[2] // 4) if per_cell else 0


def check_mask_fits_grid(grid: tuple[int, int, int], ratio: float, decoder_ratio: float) -> None:
    """The encoder tube mask and the VideoMAE V2 decoder mask leave every clip a token to reconstruct."""
    cells = grid[1] * grid[2]  # positions per time slice
    check(
        decoder_ratio == 0 or (grid[1] % 2 == 0 and grid[2] % 2 == 0),
        f"mask.decoder_ratio>0 uses 2x2 running cells: the patch grid {grid[1:]} must have even height and width",
    )
    check(
        decoder_ratio == 0 or 1 <= int(4 * decoder_ratio) <= 3,
        f"mask.decoder_ratio={decoder_ratio} drops {int(4 * decoder_ratio)} of the 4 positions of each 2x2 "
        "running cell: need 1-3 (a ratio in [0.25, 1), or 0: off)",
    )
    hidden, dropped = int(ratio * cells), always_dropped(grid, decoder_ratio)
    check(  # pigeonhole: more hidden positions than always-dropped ones keeps one to reconstruct
        hidden >= 1 and (decoder_ratio == 0 or dropped < hidden),
        f"mask.ratio={ratio} hides {hidden} of {cells} positions per time slice and mask.decoder_ratio="
        f"{decoder_ratio} drops {dropped} positions from the decoder in all {grid[0]} time slices: need "
        "hidden > that, or a lower decoder_ratio (0: off)",
    )
