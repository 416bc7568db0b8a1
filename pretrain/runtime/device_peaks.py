"""Dense peak TFLOP/s of the accelerator a run is placed on, the denominator of MFU in the training
reports and the model bench.

The FLOP counts live with the models (`VideoMAE.flops_per_clip`, `VideoClassifier.flops_per_clip`,
analytic, in `pretrain.models.flops`, checked against torch's FLOP counter by the model bench), and
so does the one training factor (`pretrain.models.flops.training_flops`: backward = 2 forwards).
"""

from __future__ import annotations

# Dense peak TFLOP/s (no sparsity) by device-name fragment, per compute dtype.
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "H100 PCIe": {"bf16": 756.0, "tf32": 378.0, "fp32": 51.2},
    "H100": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},  # SXM
    "H200": {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9},
    "A100": {"bf16": 312.0, "tf32": 156.0, "fp32": 19.5},
    "L4": {"bf16": 121.0, "tf32": 60.0, "fp32": 30.3},
    "A10": {"bf16": 125.0, "tf32": 62.5, "fp32": 31.2},
    "V100": {"fp16": 125.0, "fp32": 15.7},
}


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """Dense peak of the named accelerator for `dtype` (bf16, fp16, tf32, fp32), or None if unknown."""
    for fragment, peaks in PEAK_TFLOPS.items():
        if fragment in device_name:
            return peaks.get(dtype) or (peaks.get("bf16") if dtype == "fp16" else None)
    return None


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
