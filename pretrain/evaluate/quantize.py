"""int8 quantization of an exported ONNX classifier with onnxruntime.

- `dynamic` (the default of `tubelet export --quantize int8`): the weights of every linear layer
  (`MatMul` / `Gemm` with a constant weight: qkv, projection, MLP, head) are stored as int8, per
  output channel; activations are quantized on the fly, per tensor, from their own range at each
  call. Needs no data, and suits transformers on CPU (LayerNorm, softmax and GELU stay float).
- `static`: activation ranges fixed beforehand from calibration clips (QDQ nodes around the same
  ops). Needs real clips; kept for the measurement against dynamic (README, "int8"), not offered
  by the CLI.

Attention's activation-by-activation products (q k^T, attn v) stay float in both.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

QUANTIZED_OPS = ["MatMul", "Gemm"]
MODES = ("dynamic", "static")


def quantize_int8(
    fp32_model: Path, out: Path, mode: str = "dynamic", calibration: Iterable[np.ndarray] | None = None
) -> dict[str, Any]:
    """Write the int8 model of `fp32_model` to `out`; returns what was done (runtime.json's
    `quantization`). `calibration`: normalized float clips (B, C, T, H, W), for `static` only."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if mode not in MODES:
        raise ValueError(f"unknown quantization mode {mode!r}; choose one of {list(MODES)}")
    if mode == "dynamic":
        quantize_dynamic(
            str(fp32_model),
            str(out),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTIZED_OPS,
            per_channel=True,
        )
    else:
        if calibration is None:
            raise ValueError("static int8 quantization needs calibration clips")
        quantize_static(
            str(fp32_model),
            str(out),
            _ClipReader(calibration),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=QUANTIZED_OPS,
            per_channel=True,
        )
    return {
        "dtype": "int8",
        "mode": mode,
        "ops": QUANTIZED_OPS,
        "weights": "int8 per output channel",
        "activations": "uint8 per tensor, range per call" if mode == "dynamic" else "int8, calibrated",
        "tool": "onnxruntime.quantization",
    }


class _ClipReader:
    """onnxruntime's CalibrationDataReader protocol over normalized clips."""

    def __init__(self, clips: Iterable[np.ndarray]) -> None:
        self.clips = iter(clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        clip = next(self.clips, None)
        return None if clip is None else {"video": np.ascontiguousarray(clip, dtype=np.float32)}
