"""`tubelet export CKPT OUT --format onnx|torchscript`: a classifier for runtimes without Tubelet.

Writes `OUT/model.onnx` (or `OUT/model.pt`, TorchScript) with a dynamic batch axis, and
`OUT/runtime.json` (class names, input shape, ImageNet mean/std: the input is the normalized
`(B, C, T, H, W)` float video; the output is logits `(B, K)`). After writing, the file is run on a
batch of a different size than the one it was traced with and compared with the eager model:
parity within `PARITY_TOLERANCE` is required. ONNX parity needs onnxruntime; without it the check
is skipped and said so.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from pretrain.errors import CheckpointError, UserError
from pretrain.evaluate.inference import InferenceModel, load_inference_model
from pretrain.pixels import IMAGENET_MEAN, IMAGENET_STD

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
PARITY_TOLERANCE = 1e-4
TRACE_BATCH, CHECK_BATCH = 1, 3


@dataclass
class RuntimeExport:
    path: Path
    format: str
    max_abs_diff: float | None
    """Largest |exported - eager| logit on a batch of CHECK_BATCH clips; None when not checked."""
    note: str = ""


def example_input(loaded: InferenceModel, batch: int, seed: int = 0) -> torch.Tensor:
    spec = loaded.spec
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, spec.num_frames, spec.img_size, spec.img_size, generator=generator)


def export_runtime(checkpoint: str | Path, out_dir: str | Path, fmt: str) -> RuntimeExport:
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    loaded = load_inference_model(checkpoint)
    if loaded.kind != "classifier":
        raise CheckpointError(f"{checkpoint} is a {loaded.kind} model; {fmt} export is for classifiers")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writer = _write_onnx if fmt == "onnx" else _write_torchscript
    path = writer(loaded, out)
    _write_runtime_json(loaded, out, path.name)
    check = example_input(loaded, CHECK_BATCH, seed=1)
    with torch.no_grad():
        expected = loaded.model(check).float()  # (CHECK_BATCH, K)
    actual = _run_onnx(path, check) if fmt == "onnx" else _run_torchscript(path, check)
    if actual is None:
        return RuntimeExport(path, fmt, None, "onnxruntime is not installed: parity not checked")
    diff = float((actual - expected).abs().max())
    if diff > PARITY_TOLERANCE:
        raise CheckpointError(
            f"{path}: exported model differs from eager by {diff:.2e} (> {PARITY_TOLERANCE})"
        )
    return RuntimeExport(path, fmt, diff)


def _write_onnx(loaded: InferenceModel, out: Path) -> Path:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"ONNX export needs {' and '.join(missing)} (pip install onnx onnxscript)")
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


def _run_onnx(path: Path, video: torch.Tensor) -> torch.Tensor | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"video": video.numpy()})
    return torch.from_numpy(logits).float()


def _run_torchscript(path: Path, video: torch.Tensor) -> torch.Tensor:
    model = torch.jit.load(str(path), map_location="cpu")
    with torch.no_grad():
        return model(video).float()


def _write_runtime_json(loaded: InferenceModel, out: Path, model_file: str) -> None:
    spec = loaded.spec
    (out / "runtime.json").write_text(
        json.dumps(
            {
                "model": model_file,
                "class_names": loaded.class_names,
                "input": {
                    "name": "video",
                    "layout": "BCTHW",
                    "frames": spec.num_frames,
                    "size": spec.img_size,
                    "frame_stride": loaded.stride,
                    "mean": IMAGENET_MEAN,
                    "std": IMAGENET_STD,
                    "scale": "pixels / 255, then (x - mean) / std",
                },
                "output": {"name": "logits", "shape": ["batch", len(loaded.class_names)]},
            },
            indent=1,
        )
    )
