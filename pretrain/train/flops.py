"""The device peak of a training run, for MFU in the reports.

The FLOP counts live with the models (`VideoMAE.flops_per_clip`, `VideoClassifier.flops_per_clip`,
analytic, in `pretrain.models.flops`, checked against torch's FLOP counter by the model bench), and
so does the one training factor (`pretrain.models.flops.training_flops`: backward = 2 forwards).
"""

from __future__ import annotations

from pretrain.models.flops import peak_tflops

PRECISION_DTYPE = {
    "bf16-mixed": "bf16",
    "bf16-true": "bf16",
    "16-mixed": "fp16",
    "16-true": "fp16",
    "32-true": "fp32",
}


def device_peak_tflops(configured: float | None, precision: str = "bf16-mixed") -> float | None:
    """`logging.device_peak_tflops` if set, else the known dense peak of this GPU for the run's
    precision, else None (no MFU, e.g. on CPU)."""
    if configured:
        return configured
    import torch

    if not torch.cuda.is_available():
        return None
    return peak_tflops(torch.cuda.get_device_name(), PRECISION_DTYPE.get(precision, "bf16"))
