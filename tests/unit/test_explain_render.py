"""The explain picture's scale: a pretraining model's error, nearly flat around a large mean, still
spans the colormap (drawn between its 5th and 95th percentiles); 0..max would paint it flat."""

import pytest
import torch

from pretrain.evaluate.explain_render import HeatScale, overlay_frames


def test_a_narrow_error_range_spans_the_colormap_where_zero_to_max_is_flat():
    errors = 1.0 + 0.02 * torch.linspace(0, 1, 64).reshape(4, 4, 4)  # (T', H', W'): 1.00 .. 1.02
    rest = {"curve": [0.0] * 8, "curve_label": "mean error", "times": [t / 8 for t in range(8)]}
    spread = HeatScale.spread(errors, "error", **rest)
    assert (spread.low, spread.high) == pytest.approx((1.001, 1.019), abs=1e-3)
    flat = HeatScale(errors, 0.0, float(errors.max()), "error", **rest)
    video = torch.full((3, 8, 16, 16), 128, dtype=torch.uint8)  # (C, T, H, W) mid grey

    def contrast(scale: HeatScale) -> float:  # brightness of the last frame over the first
        overlays = torch.from_numpy(overlay_frames(video, scale, min_side=16)).float()  # (T, H, W, 3)
        return float(overlays[-1].mean() - overlays[0].mean())

    assert contrast(spread) > 50 and contrast(flat) < 5  # 81 vs 4 grey levels
