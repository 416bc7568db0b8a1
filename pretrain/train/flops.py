"""FLOPs of a training step and the device peak, for achieved TFLOP/s and MFU in the reports.

The analytic counts live with the model (`pretrain.models.flops`, checked against torch's FLOP
counter by the model bench); this only adapts them to the training loop: 3 forwards per step, and
the peak of the current device for the run's precision.
"""

from __future__ import annotations

from typing import Optional

from pretrain.models.flops import block_flops, peak_tflops, training_flops, videomae_forward_flops
from pretrain.models.vit import ArchSpec

__all__ = ["TRAIN_FLOPS_PER_FORWARD", "block_flops", "device_peak_tflops", "videomae_train_flops"]

TRAIN_FLOPS_PER_FORWARD = 3  # backward ≈ 2 forwards
PRECISION_DTYPE = {"bf16-mixed": "bf16", "bf16-true": "bf16", "16-mixed": "fp16", "16-true": "fp16",
                   "32-true": "fp32"}


def videomae_train_flops(spec: ArchSpec, visible_tokens: int, target_tokens: int) -> int:
    """One clip's training step: `visible_tokens` encoded, `target_tokens` reconstructed."""
    return training_flops(videomae_forward_flops(spec, visible_tokens, target_tokens))


def device_peak_tflops(configured: Optional[float], precision: str = "bf16-mixed") -> Optional[float]:
    """`logging.device_peak_tflops` if set, else the known dense peak of this GPU for the run's
    precision, else None (no MFU, e.g. on CPU)."""
    if configured:
        return configured
    import torch

    if not torch.cuda.is_available():
        return None
    return peak_tflops(torch.cuda.get_device_name(), PRECISION_DTYPE.get(precision, "bf16"))
