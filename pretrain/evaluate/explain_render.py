"""Pictures of a saliency map: a PNG (frames with the heat map over them, the per-frame importance
curve under them) and an MP4 of the overlay. Matplotlib (Agg) draws; PyAV encodes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HEAT_ALPHA = 0.5
MIN_DISPLAY_SIDE = 128
COLORMAP = "inferno"


def overlay_frames(video: torch.Tensor, scores: torch.Tensor, min_side: int = MIN_DISPLAY_SIDE) -> np.ndarray:
    """uint8 video (C, T, H, W) and token scores (T', H', W') -> uint8 RGB overlays (T, H2, W2, 3),
    scaled up so the short side is at least `min_side` (even sizes, for the encoder)."""
    from matplotlib import colormaps

    _, frames, height, width = video.shape
    scale = max(1, -(-min_side // min(height, width)))
    size = (2 * (height * scale // 2), 2 * (width * scale // 2))
    rgb = F.interpolate(
        video.permute(1, 0, 2, 3).float(), size=size, mode="bilinear", align_corners=False
    )  # (T, C, H2, W2)
    tubelet = frames // scores.shape[0]
    heat = scores.float().repeat_interleave(tubelet, 0)[:, None]  # (T, 1, H', W')
    heat = F.interpolate(heat, size=size, mode="bilinear", align_corners=False)[:, 0]  # (T, H2, W2)
    heat = (heat / heat.max().clamp_min(1e-12)).clamp(0, 1).numpy()
    coloured = colormaps[COLORMAP](heat)[..., :3] * 255.0  # (T, H2, W2, 3)
    blended = (1 - HEAT_ALPHA) * rgb.permute(0, 2, 3, 1).numpy() + HEAT_ALPHA * coloured
    return blended.clip(0, 255).astype(np.uint8)


def write_overlay_png(
    video: torch.Tensor, scores: torch.Tensor, frame_scores: list[float], title: str, path: Path
) -> Path:
    """Frames with the heat map in one row, the per-frame importance curve below."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    overlays = overlay_frames(video, scores)
    count = len(overlays)
    figure = plt.figure(figsize=(max(6.0, 1.3 * count), 3.4), dpi=100)
    grid = figure.add_gridspec(2, count, height_ratios=(1.3, 1.0), hspace=0.35, wspace=0.05)
    for t, overlay in enumerate(overlays):
        axis = figure.add_subplot(grid[0, t])
        axis.imshow(overlay)
        axis.set_axis_off()
        axis.set_title(f"{t}", fontsize=7)
    curve = figure.add_subplot(grid[1, :])
    curve.plot(range(count), frame_scores, marker="o", color="tab:red")
    curve.set_xlim(-0.5, count - 0.5)
    curve.set_ylim(bottom=0)
    curve.set_xlabel("input frame")
    curve.set_ylabel("importance")
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


def write_overlay_video(video: torch.Tensor, scores: torch.Tensor, path: Path, fps: float) -> Path:
    """The overlay frames as an H.264 MP4."""
    from pretrain.data.video.write import write_video

    return write_video(path, overlay_frames(video, scores), fps=max(1, round(fps)))
