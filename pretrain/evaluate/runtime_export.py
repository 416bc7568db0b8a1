"""`tubelet export CKPT OUT --format onnx|torchscript [--quantize int8]`: a classifier for runtimes
without Tubelet.

Writes `OUT/model.onnx` (or `OUT/model.pt`, TorchScript) with a dynamic batch axis, and
`OUT/runtime.json` (class names, input shape, the mean/std the weights expect, the architecture and
the run config: the input is the normalized `(B, C, T, H, W)` float video; the output is logits
`(B, K)`). After writing, the file is run on a batch of a different size than the one it was traced
with and compared with the eager model: parity within `PARITY_TOLERANCE` is required.

`--quantize int8` (ONNX only) also writes `OUT/model.int8.onnx` (`quantize.quantize_int8`, dynamic)
and points runtime.json at it; int8 is not held to the fp32 tolerance: its largest logit difference
and top-1 agreement with the eager model on the check batch are reported instead. The exporter's
own chatter (pass logs, warnings) goes to `OUT/export.log`, not the terminal.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from pretrain.config import config_to_dict
from pretrain.errors import CheckpointError, UserError
from pretrain.evaluate.inference import InferenceModel, load_inference_model
from pretrain.evaluate.onnx_model import RUNTIME_JSON, load_onnx_classifier, require_onnx_extra
from pretrain.runtime.quiet import library_chatter_to

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
QUANTIZE = ("int8",)
PARITY_TOLERANCE = 1e-4
TRACE_BATCH, CHECK_BATCH = 1, 3
EXPORT_LOG = "export.log"


@dataclass
class RuntimeExport:
    path: Path
    format: str
    max_abs_diff: float
    """Largest |exported - eager| logit on a batch of CHECK_BATCH clips."""
    quantization: str | None = None
    top1_agreement: float | None = None
    """int8: share of the check clips whose top class is the eager model's."""
    log_file: Path | None = None


def example_input(loaded: InferenceModel, batch: int, seed: int = 0) -> torch.Tensor:
    spec = loaded.spec
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, spec.num_frames, spec.img_size, spec.img_size, generator=generator)


def export_runtime(
    checkpoint: str | Path, out_dir: str | Path, fmt: str, quantize: str | None = None
) -> RuntimeExport:
    _check_request(fmt, quantize)
    loaded = load_inference_model(checkpoint)
    if loaded.kind != "classifier":
        raise CheckpointError(f"{checkpoint} is a {loaded.kind} model; {fmt} export is for classifiers")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / EXPORT_LOG
    with library_chatter_to(log_file):
        path = _write_onnx(loaded, out) if fmt == "onnx" else _write_torchscript(loaded, out)
        quantization = _quantize(path, quantize) if quantize else None
    final = path if quantization is None else path.with_suffix(".int8.onnx")
    _write_runtime_json(loaded, out, final.name, quantization)
    check = example_input(loaded, CHECK_BATCH, seed=1)
    with torch.no_grad():
        expected = loaded.model(check).float()  # (CHECK_BATCH, K)
    exported = _run_onnx(out, path.name, check) if fmt == "onnx" else _run_torchscript(path, check)
    diff = float((exported - expected).abs().max())
    if diff > PARITY_TOLERANCE:
        raise CheckpointError(
            f"{path}: exported model differs from eager by {diff:.2e} (> {PARITY_TOLERANCE})"
        )
    result = RuntimeExport(path, fmt, diff, log_file=log_file)
    if quantization is None:
        return result
    actual = _run_onnx(out, final.name, check)  # (CHECK_BATCH, K)
    agreement = float((actual.argmax(-1) == expected.argmax(-1)).float().mean())
    return RuntimeExport(final, fmt, float((actual - expected).abs().max()), quantize, agreement, log_file)


def _check_request(fmt: str, quantize: str | None) -> None:
    """Refuse an impossible request before any work, naming what works."""
    if quantize is not None and quantize not in QUANTIZE:
        raise UserError(f"--quantize {quantize}: choose one of {list(QUANTIZE)}")
    if quantize and fmt != "onnx":  # also the default safetensors: quantizing is an ONNX graph pass
        raise UserError(f"--quantize {quantize} needs --format onnx (onnxruntime quantizes the ONNX graph)")
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    if fmt == "onnx":
        require_onnx_extra("onnx", "onnxscript", "onnxruntime", what="ONNX export")


def _quantize(fp32_model: Path, dtype: str) -> dict:
    """`dtype` int8 (the one in QUANTIZE): onnxruntime's dynamic quantization (see `quantize`)."""
    from pretrain.evaluate.quantize import quantize_int8

    return quantize_int8(fp32_model, fp32_model.with_suffix(".int8.onnx"))


def _write_onnx(loaded: InferenceModel, out: Path) -> Path:
    path = out / "model.onnx"
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.onnx.export(
        loaded.model,
        (example_input(loaded, TRACE_BATCH + 1),),
        dynamo=True,
        input_names=["video"],
        output_names=["logits"],
        dynamic_shapes={"video": {0: batch}},
        verbose=False,
    )
    program.save(str(path))
    return path


def _write_torchscript(loaded: InferenceModel, out: Path) -> Path:
    path = out / "model.pt"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", torch.jit.TracerWarning
        )  # shape checks and the q/k/v split: constants
        traced = torch.jit.trace(loaded.model, example_input(loaded, TRACE_BATCH), check_trace=False)
    traced.save(str(path))
    return path


def _run_onnx(out: Path, model_file: str, video: torch.Tensor) -> torch.Tensor:
    """Logits of the ONNX file `model_file` in `out`, through the same loader predict uses."""
    return load_onnx_classifier(out, model_file=model_file)(video).float()


def _run_torchscript(path: Path, video: torch.Tensor) -> torch.Tensor:
    model = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return model(video).float()


def _write_runtime_json(
    loaded: InferenceModel, out: Path, model_file: str, quantization: dict | None
) -> None:
    spec, run_config = loaded.spec, getattr(loaded.model, "run_config", None)
    runtime = {
        "model": model_file,
        "class_names": loaded.class_names,
        "input": {
            "name": "video",
            "layout": "BCTHW",
            "frames": spec.num_frames,
            "size": spec.img_size,
            "frame_stride": loaded.stride,
            "mean": list(spec.pixel_mean),
            "std": list(spec.pixel_std),
            "scale": "pixels / 255, then (x - mean) / std",
        },
        "output": {"name": "logits", "shape": ["batch", len(loaded.class_names)]},
        "quantization": quantization,
        "arch": spec.to_dict(),
        "run_config": config_to_dict(run_config) if run_config is not None else None,
    }
    (out / RUNTIME_JSON).write_text(json.dumps(runtime, indent=1))
