"""`tubelet export --format torchscript|onnx`: a classifier export runs outside Tubelet with a dynamic
batch size and matches the eager model within 1e-4 (ONNX checked with onnxruntime when installed)."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from pretrain.cli import main
from pretrain.evaluate.inference import load_inference_model
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import VideoClassifier
from pretrain.models.videomae import VideoMAE
from pretrain.weights import save_export

SPEC = ArchSpec.from_size("tiny", img_size=32, num_frames=8, tubelet_size=2, patch_size=8)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    torch.manual_seed(0)
    model = VideoClassifier(SPEC, 4, head_init_scale=1.0).eval()
    return save_export(model, None, tmp_path_factory.mktemp("runtime") / "model", class_names=list("abcd"))


def exported_logits(fmt: str, path, video: torch.Tensor) -> torch.Tensor:
    if fmt == "torchscript":
        return torch.jit.load(str(path))(video)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"video": video.numpy()})[0])


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_matches_eager_for_any_batch_size(classifier, tmp_path, capsys, fmt):
    if fmt == "onnx" and not all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime")):
        pytest.skip("onnx, onnxscript and onnxruntime are not installed")
    assert main(["export", str(classifier), str(tmp_path), "--format", fmt]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert printed["format"] == fmt and printed["max_abs_diff"] <= 1e-4
    runtime = json.loads((tmp_path / "runtime.json").read_text())
    assert runtime["class_names"] == list("abcd") and runtime["input"]["frames"] == 8
    eager = load_inference_model(classifier).model
    for batch in (1, 5):
        video = torch.randn(batch, 3, 8, 32, 32)
        with torch.no_grad():
            assert torch.allclose(
                exported_logits(fmt, tmp_path / runtime["model"], video), eager(video), atol=1e-4
            )


def test_a_pretraining_checkpoint_is_refused(tmp_path, capsys):
    export = save_export(VideoMAE(SPEC), None, tmp_path / "mae")
    assert main(["export", str(export), str(tmp_path / "out"), "--format", "torchscript"]) == 1
    assert "is a pretraining model; torchscript export is for classifiers" in capsys.readouterr().err
