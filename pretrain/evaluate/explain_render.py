"""Pictures of a saliency map: a PNG (frames with the heat map over them, each labelled by its time
in the source, a colorbar giving the heat's scale, the per-frame curve under them) and an MP4 of the
overlay. Matplotlib (Agg) draws; PyAV encodes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

HEAT_ALPHA = 0.5
MIN_DISPLAY_SIDE = 128
COLORMAP = "inferno"


@dataclass(frozen=True)
class HeatScale:
    """What the heat shows and how: `values` (T', H', W') drawn from `low` (dark) to `high`
    (bright), named by `label` on the colorbar; `curve` one value per input frame, named `curve_label`;
    `times` the source time (s) of every input frame."""

    values: torch.Tensor
    low: float
    high: float
    label: str
    curve: list[float]
    curve_label: str
    times: list[float]

    @classmethod
    def spread(cls, values: torch.Tensor, label: str, **rest) -> HeatScale:
        """Bounds at the 5th and 95th percentile of the values: an error that varies by a few percent
        around a large mean still spans the colormap (0..max would paint every token the same)."""
        low, high = torch.quantile(values.float().flatten(), torch.tensor([0.05, 0.95])).tolist()
        return cls(values, low, high if high > low else low + 1e-12, label, **rest)


def overlay_frames(video: torch.Tensor, scale: HeatScale, min_side: int = MIN_DISPLAY_SIDE) -> np.ndarray:
    """uint8 video (C, T, H, W) and its heat scale -> uint8 RGB overlays (T, H2, W2, 3), scaled up
    so the short side is at least `min_side` (even sizes, for the encoder)."""
    from matplotlib import colormaps

    _, frames, height, width = video.shape
    factor = max(1, -(-min_side // min(height, width)))
    size = (2 * (height * factor // 2), 2 * (width * factor // 2))
    rgb = F.interpolate(
        video.permute(1, 0, 2, 3).float(), size=size, mode="bilinear", align_corners=False
    )  # (T, C, H2, W2)
    tubelet = frames // scale.values.shape[0]
    heat = scale.values.float().repeat_interleave(tubelet, 0)[:, None]  # (T, 1, H', W')
    heat = F.interpolate(heat, size=size, mode="bilinear", align_corners=False)[:, 0]  # (T, H2, W2)
    heat = ((heat - scale.low) / (scale.high - scale.low)).clamp(0, 1).numpy()
    coloured = colormaps[COLORMAP](heat)[..., :3] * 255.0  # (T, H2, W2, 3)
    blended = (1 - HEAT_ALPHA) * rgb.permute(0, 2, 3, 1).numpy() + HEAT_ALPHA * coloured
    return blended.clip(0, 255).astype(np.uint8)


def write_overlay_png(video: torch.Tensor, scale: HeatScale, title: str, path: Path) -> Path:
    """Frames with the heat map in one row (titled by time), its colorbar, the per-frame curve below."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    overlays = overlay_frames(video, scale)
    count = len(overlays)
    figure = plt.figure(figsize=(max(6.0, 1.3 * count + 1.2), 3.6), dpi=100)
    grid = figure.add_gridspec(2, count + 1, height_ratios=(1.3, 1.0), width_ratios=(*[1] * count, 0.12))
    grid.update(hspace=0.45, wspace=0.05)
    for t, overlay in enumerate(overlays):
        axis = figure.add_subplot(grid[0, t])
        axis.imshow(overlay)
        axis.set_axis_off()
        axis.set_title(f"{scale.times[t]:.2f} s", fontsize=7)
    bar = figure.colorbar(
        ScalarMappable(Normalize(scale.low, scale.high), COLORMAP), cax=figure.add_subplot(grid[0, count])
    )
    bar.ax.tick_params(labelsize=6)
    bar.set_label(scale.label, fontsize=6)
    curve = figure.add_subplot(grid[1, :count])
    curve.plot(scale.times, scale.curve, marker="o", color="tab:red")
    curve.ticklabel_format(axis="y", useOffset=False)
    curve.set_xlabel("time in the video (s)")
    curve.set_ylabel(scale.curve_label, fontsize=8)
    figure.suptitle(title, fontsize=9)
    figure.savefig(path, bbox_inches="tight")
    plt.close(figure)
    return path


def write_overlay_video(video: torch.Tensor, scale: HeatScale, path: Path, fps: float) -> Path:
    """The overlay frames as an H.264 MP4."""
    from pretrain.data.video.write import write_video

    return write_video(path, overlay_frames(video, scale), fps=max(1, round(fps)))
