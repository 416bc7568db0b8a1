"""The token layout every backbone shares (pure PyTorch).

Token order everywhere is (T', H', W') flattened, the order of a Conv3d patch embedding. Inside the
model a token's pixels are laid out channel-first `(channel, tubelet, patch, patch)`: the Conv3d
weight order, so the embedding is one matmul with the flattened weight, and each channel's pixels
are contiguous for the per-cube statistics of the loss. One patchify of the video serves both.
Predictions use VideoMAE's / Hugging Face's `(tubelet, patch, patch, channel)` order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pretrain.pixels import CHANNELS

if TYPE_CHECKING:
    from pretrain.models.arch import ArchSpec


def check_video(video: torch.Tensor, spec: ArchSpec) -> None:
    """A clip of another length would be mis-grouped into time slices: refuse it, naming both."""
    expected = (CHANNELS, spec.num_frames, spec.img_size, spec.img_size)
    if video.ndim != 5 or tuple(video.shape[1:]) != expected:
        frames = f" ({video.shape[2]} frames, the model takes {spec.num_frames})" if video.ndim == 5 else ""
        raise ValueError(
            f"video must have shape (B, C, T, H, W) = (B, {', '.join(map(str, expected))}); "
            f"got {tuple(video.shape)}{frames}"
        )


def patchify(video: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, N, C*tubelet*patch*patch), tokens in (T', H', W') order,
    pixels channel-first (runs of `patch` pixels stay contiguous, so the copy is cheap)."""
    b, c, t, h, w = video.shape
    x = video.view(b, c, t // tubelet, tubelet, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, tubelet, p, p)
    return x.reshape(b, -1, c * tubelet * patch * patch)


def unpatchify(patches: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """(B, N, C*tubelet*patch*patch) -> (B, C, T, H, W); the inverse of `patchify`."""
    b = patches.shape[0]
    (gt, gh, gw), t, p = spec.grid, spec.tubelet_size, spec.patch_size
    x = patches.reshape(b, gt, gh, gw, CHANNELS, t, p, p)
    x = x.permute(0, 4, 1, 5, 2, 6, 3, 7)  # (B, C, T', t, H', p, W', p)
    return x.reshape(b, CHANNELS, gt * t, gh * p, gw * p)


def channels_last(patches: torch.Tensor) -> torch.Tensor:
    """(..., C*tpp) channel-first pixels -> (..., tpp*C), the prediction order."""
    return patches.unflatten(-1, (CHANNELS, -1)).transpose(-1, -2).flatten(-2)


def channels_first(patches: torch.Tensor) -> torch.Tensor:
    """(..., tpp*C) prediction order -> (..., C*tpp); the inverse of `channels_last`."""
    return patches.unflatten(-1, (-1, CHANNELS)).transpose(-1, -2).flatten(-2)


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x (B, N, D), index (B, n) long -> (B, n, D); whole rows copied with one index_select."""
    b, n, d = x.shape
    flat = (index + torch.arange(b, device=index.device)[:, None] * n).flatten()  # (B * n,)
    return x.reshape(b * n, d).index_select(0, flat).view(b, -1, d)


def tube_positions(index: torch.Tensor, spec: ArchSpec) -> torch.Tensor:
    """Spatial positions (B, n) of the tokens at `index` (B, T' * n) when they form a (T', n) grid,
    the same n positions in every time slice, as under a tube mask.

    Divided and factorised attention group tokens by slice and by position, so a mask hiding
    different positions in different slices cannot run on visible tokens only: a ValueError."""
    slices, positions, batch = spec.grid[0], spec.spatial_tokens, index.shape[0]
    if index.shape[1] % slices:
        raise ValueError(
            f"backbone {spec.backbone} needs a tube mask (mask.kind=tube): "
            f"{index.shape[1]} visible tokens do not fill {slices} time slices"
        )
    grid = index.view(batch, slices, -1)  # (B, T', n)
    spatial = grid % positions
    in_order = grid // positions == torch.arange(slices, device=index.device)[None, :, None]
    if not bool((spatial == spatial[:, :1]).all() & in_order.all()):
        raise ValueError(
            f"backbone {spec.backbone} needs a tube mask (mask.kind=tube): the visible "
            "tokens differ between time slices"
        )
    return spatial[:, 0]  # (B, n)
