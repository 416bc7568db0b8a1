"""Token masks for masked-video pretraining (pure torch; used by the data pipeline and the model).

Token order everywhere is (T', H', W') flattened, the order of the Conv3d patch embedding.
Encoder masks: True = hidden from the encoder. Decoder masks: True = reconstructed by the decoder.
"""

from __future__ import annotations

import math

import torch


def tube_mask(
    grid: tuple[int, int, int], ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """VideoMAE tube mask: one random spatial mask of `int(ratio * H'W')` patches, repeated over
    every time slot, so a hidden patch cannot be copied from its neighbour in time.

    Returns bool `(T' * H' * W',)` with exactly `T' * int(ratio * H'W')` True entries.
    """
    frames, height, width = grid
    per_frame = height * width
    num_hidden = int(ratio * per_frame)
    order = torch.randperm(per_frame, generator=generator)
    spatial = torch.zeros(per_frame, dtype=torch.bool)
    spatial[order[:num_hidden]] = True
    return spatial.repeat(frames)  # (T' * H' * W',)


def random_mask(
    grid: tuple[int, int, int], ratio: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random token mask (the VideoMAE ablation): `int(ratio * N)` of all N tokens hidden,
    independently of time. Returns bool `(N,)`."""
    num_tokens = math.prod(grid)
    mask = torch.zeros(num_tokens, dtype=torch.bool)
    mask[torch.randperm(num_tokens, generator=generator)[: int(ratio * num_tokens)]] = True
    return mask


ENCODER_MASKS = {"tube": tube_mask, "random": random_mask}


def running_cell_mask(
    grid: tuple[int, int, int], ratio: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """VideoMAE V2 decoder mask: in every 2x2 cell, `int(4 * ratio)` positions are dropped from the
    decoder and the rest are reconstructed; the pattern shifts by one position each time slot so
    every position is reconstructed over time. The starting shift is random.

    Returns bool `(T' * H' * W',)`, True = reconstructed by the decoder.
    """
    frames, height, width = grid
    if height % 2 or width % 2:
        raise ValueError(f"running-cell masks need an even patch grid, got (H', W')=({height}, {width})")
    num_dropped = int(4 * ratio)
    if not 0 < num_dropped < 4:
        raise ValueError(f"decoder mask ratio {ratio} drops {num_dropped} of 4 cell positions; need 1-3")
    queue = torch.cat(
        [torch.zeros(num_dropped, dtype=torch.bool), torch.ones(4 - num_dropped, dtype=torch.bool)]
    )
    start = int(torch.randint(4, (1,), generator=generator))
    slots = []
    for t in range(frames):
        cell = queue.roll(-(start + t + 1)).reshape(2, 2)  # (2, 2)
        slots.append(cell.repeat(height // 2, width // 2))  # (H', W')
    return torch.stack(slots).flatten()  # (T' * H' * W',)


def batch_masks(
    batch_size: int,
    grid: tuple[int, int, int],
    ratio: float,
    decoder_ratio: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encoder masks `(B, N)` and, when `decoder_ratio > 0`, decoder masks `(B, N)`."""
    encoder = torch.stack([tube_mask(grid, ratio, generator) for _ in range(batch_size)])
    if decoder_ratio <= 0:
        return encoder, None
    decoder = torch.stack([running_cell_mask(grid, decoder_ratio, generator) for _ in range(batch_size)])
    return encoder, decoder


def num_hidden_tokens(grid: tuple[int, int, int], ratio: float) -> int:
    """Tokens hidden from the encoder per clip by `tube_mask`."""
    return grid[0] * int(ratio * math.prod(grid[1:]))
