"""What a clip is to every backbone (no torch needed): RGB (`CHANNELS`) normalized with ImageNet
statistics, cut into tubelets of `tubelet × patch × patch` pixels on a (T', H', W') token grid.

The one source of these facts, at the bottom of the import map beside `errors` and `masking`: the
data pipeline normalizes with these statistics, the models un-normalize with them (pixel targets,
visualizations), and both the config and `ArchSpec` count tokens with `token_grid`.
"""

from __future__ import annotations

CHANNELS = 3  # RGB
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def token_grid(img_size: int, num_frames: int, patch_size: int, tubelet_size: int) -> tuple[int, int, int]:
    """(T', H', W') tokens of a square `img_size` clip of `num_frames` frames."""
    side = img_size // patch_size
    return (num_frames // tubelet_size, side, side)
