"""A classifier exported by `tubelet export --format onnx [--quantize int8]`, run by onnxruntime.

`OnnxClassifier` has the call shape of `VideoClassifier` (normalized `(B, C, T, H, W)` float video
-> logits `(B, K)`) and the attributes the inference path reads (`spec`, `num_classes`,
`class_names`, `input_mean` / `input_std`, `run_config`), so `predict`, `predict --stream`,
`explain --method occlusion` and `bench infer` take an ONNX export like any checkpoint. No
autograd and no attention maps: an onnxruntime session is a black box to torch.

The export folder holds `runtime.json` (written by `runtime_export`) naming the model file, the
architecture and the training run's config. An ONNX file holds no code, so loading one runs none.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pretrain.errors import CheckpointError, UserError
from pretrain.models.arch import ArchSpec

RUNTIME_JSON = "runtime.json"
ONNX_EXTRA = "pip install 'tubelet[onnx]'"
"""The extra that holds onnx, onnxscript and onnxruntime (pyproject.toml)."""


def require_onnx_extra(*modules: str, what: str) -> None:
    """A UserError naming the `onnx` extra when one of `modules` is not installed."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise UserError(f"{what} needs {', '.join(missing)}: {ONNX_EXTRA}")


def is_onnx_export(path: str | Path) -> bool:
    """A folder written by `tubelet export --format onnx` (its runtime.json names a .onnx file)."""
    manifest = Path(path) / RUNTIME_JSON
    if not manifest.is_file():
        return False
    try:
        return str(json.loads(manifest.read_text()).get("model", "")).endswith(".onnx")
    except (OSError, ValueError, AttributeError):
        return False


class OnnxClassifier(nn.Module):
    """An onnxruntime session behind a `VideoClassifier`'s call: `(B, C, T, H, W)` -> `(B, K)`."""

    def __init__(self, session: Any, spec: ArchSpec, class_names: list[str], runtime: dict[str, Any]) -> None:
        super().__init__()
        self.session = session
        self.spec = spec
        self.num_classes = len(class_names)
        self.class_names = class_names
        self.input_mean, self.input_std = spec.pixel_mean, spec.pixel_std
        self.quantization = runtime.get("quantization")
        """None for fp32, else what was quantized and how (runtime.json's `quantization`)."""
        self.run_config = _run_config(runtime.get("run_config"))
        self.source_format = "onnx-int8" if self.quantization else "onnx"

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, C, T, H, W) normalized -> logits (B, K), float32 on the CPU."""
        array = video.detach().to("cpu", torch.float32).contiguous().numpy()
        (logits,) = self.session.run(["logits"], {"video": array})
        return torch.from_numpy(logits)


def load_onnx_classifier(
    path: str | Path, threads: int | None = None, model_file: str | None = None
) -> OnnxClassifier:
    """The classifier of an ONNX export folder; `threads` sets onnxruntime's intra-op threads
    (default: torch's, so that timings compare like with like); `model_file` another ONNX file of
    the folder than the one runtime.json names (the fp32 model beside its int8 one)."""
    folder = Path(path)
    require_onnx_extra("onnxruntime", what=f"running the ONNX export {folder}")
    import onnxruntime

    runtime = json.loads((folder / RUNTIME_JSON).read_text())
    if "arch" not in runtime:
        raise CheckpointError(
            f"{folder / RUNTIME_JSON} has no 'arch' (exported by an older Tubelet): export it again"
        )
    if model_file not in (None, runtime["model"]):
        runtime = {**runtime, "model": model_file, "quantization": None}  # the fp32 model beside int8
    model_file = folder / runtime["model"]
    if not model_file.is_file():
        raise CheckpointError(f"{model_file} is missing (named by {folder / RUNTIME_JSON})")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.log_severity_level = 3  # errors only: its graph notes are not the user's business
    # Idle threads sleep instead of spinning: between calls the cores belong to decoding and torch
    # (spinning made a 1 ms model 3.7 ms at batch 1 beside torch on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors for bad files
        raise CheckpointError(f"{model_file}: onnxruntime cannot load it ({error})") from None
    spec, class_names = ArchSpec.from_dict(runtime["arch"]), list(runtime["class_names"])
    check_declared_shapes(session, spec, class_names, model_file)
    return OnnxClassifier(session, spec, class_names, runtime)


def check_declared_shapes(session: Any, spec: ArchSpec, class_names: list[str], model_file: Path) -> None:
    """runtime.json's architecture and class names against the graph's own input and output shapes
    (the batch axis is dynamic): a folder whose files disagree is refused, naming both."""
    declared = {
        "video (C, T, H, W)": [len(spec.pixel_mean), spec.num_frames, spec.img_size, spec.img_size],
        "logits (K)": [len(class_names)],
    }
    graph = {
        "video (C, T, H, W)": list(session.get_inputs()[0].shape[1:]),
        "logits (K)": list(session.get_outputs()[0].shape[1:]),
    }
    wrong = [
        f"{name}: graph {graph[name]} vs runtime.json {declared[name]}"
        for name in declared
        if any(isinstance(g, int) and g != d for g, d in zip(graph[name], declared[name], strict=True))
        or len(graph[name]) != len(declared[name])
    ]
    if wrong:
        raise CheckpointError(f"{model_file} does not take what {RUNTIME_JSON} declares: {'; '.join(wrong)}")


def _run_config(values: dict[str, Any] | None) -> Any:
    if not values:
        return None
    from pretrain.config import config_from_dict

    return config_from_dict(values)
