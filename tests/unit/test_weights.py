"""`pretrain.weights.from_pretrained` from each kind of source, and the format registry's extension point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pretrain.errors import CheckpointError
from pretrain.models import VideoClassifier, VideoMAE
from pretrain.models.arch import ArchSpec
from pretrain.models.classifier import make_linear_probe
from pretrain.pixels import IMAGENET_MEAN, IMAGENET_STD
from pretrain.weights import (
    FORMATS,
    Weights,
    WeightsFormat,
    describe,
    detect_format,
    from_pretrained,
    register_format,
    save_export,
    save_hf,
)
from pretrain.weights.formats import model_config

SPEC = ArchSpec.from_size("tiny", img_size=32, num_frames=4)
CLASSES = ["jump", "run", "sit"]


def _classifier() -> VideoClassifier:
    torch.manual_seed(0)
    return VideoClassifier(SPEC, len(CLASSES)).eval()


def test_a_classifier_export_gives_logits_class_names_and_normalization(tmp_path):
    model = _classifier()
    save_export(model, None, tmp_path / "export", class_names=CLASSES)
    loaded = from_pretrained(tmp_path / "export")
    video = torch.randn(2, 3, 4, 32, 32)  # (B, C, T, H, W), normalized
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(video), model(video), rtol=0, atol=0)  # (B, K)
    assert loaded(video).shape == (2, 3) and loaded.class_names == CLASSES
    assert (loaded.input_mean, loaded.input_std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert loaded.source_format == "tubelet"


def test_a_linear_probe_and_a_pretraining_model_come_back_as_they_were(tmp_path):
    probe = make_linear_probe(_classifier()).eval()
    save_export(probe, None, tmp_path / "probe", class_names=CLASSES)
    video = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(from_pretrained(tmp_path / "probe")(video), probe(video), rtol=0, atol=0)
    torch.manual_seed(1)
    videomae = VideoMAE(SPEC)
    state, config = describe(videomae)
    save_hf(state, config, tmp_path / "hf")
    loaded = from_pretrained(tmp_path / "hf")
    assert (
        isinstance(loaded, VideoMAE) and loaded.class_names is None and detect_format(tmp_path / "hf") == "hf"
    )
    assert all(torch.equal(v, videomae.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_a_new_format_plugs_in_through_the_registry(tmp_path):
    source = tmp_path / "weights.mine"
    model = _classifier()
    torch.save({"shapes": 1}, source)

    def read(path: Path) -> Weights:
        return Weights(describe(model)[0], model_config(SPEC, "classifier", "mine", class_names=CLASSES))

    fmt = WeightsFormat("mine", lambda path: path.suffix == ".mine", read, "a test format")
    register_format(fmt, before="videomae")
    try:
        assert detect_format(source) == "mine"
        assert from_pretrained(source).class_names == CLASSES
    finally:
        FORMATS.remove(fmt)
    with pytest.raises(CheckpointError, match="no state dict found"):  # back to the catch-all format
        from_pretrained(source)


def test_a_hf_export_runs_in_transformers_pipeline_with_our_normalization(tmp_path):
    transformers = pytest.importorskip("transformers")
    import numpy as np

    from pretrain.data.video.write import write_video
    from pretrain.weights import convert_weights

    model = _classifier()
    with torch.no_grad():  # a full-scale head so the classes are told apart
        model.head.weight.normal_(0, 1.0, generator=torch.Generator().manual_seed(0))
    save_export(model, None, tmp_path / "export", class_names=CLASSES)
    convert_weights(tmp_path / "export", tmp_path / "hf", to="hf")
    assert (tmp_path / "hf" / "README.md").read_text().count("3 classes: jump, run, sit") == 1
    assert oct((tmp_path / "hf" / "model.safetensors").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    frames = [np.random.default_rng(i).integers(0, 256, (32, 32, 3), dtype=np.uint8) for i in range(4)]
    processor = transformers.AutoImageProcessor.from_pretrained(tmp_path / "hf")
    pixels = processor(frames, return_tensors="pt")["pixel_values"]  # (1, T, C, H, W)
    ours = (torch.from_numpy(np.stack(frames)).float() / 255 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(
        IMAGENET_STD
    )
    torch.testing.assert_close(pixels[0], ours.permute(0, 3, 1, 2), rtol=0, atol=1e-5)
    hf = transformers.VideoMAEForVideoClassification.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            hf(pixel_values=pixels).logits, model(pixels.permute(0, 2, 1, 3, 4)), rtol=1e-4, atol=1e-4
        )  # fc_norm eps 1e-5 in HF vs 1e-6 here
    clip = write_video(
        tmp_path / "clip.mp4", [np.full((48, 64, 3), 20 * i, dtype=np.uint8) for i in range(12)]
    )
    answers = transformers.pipeline("video-classification", model=str(tmp_path / "hf"))(str(clip), top_k=3)
    assert sorted(a["label"] for a in answers) == sorted(CLASSES) and sum(
        a["score"] for a in answers
    ) == pytest.approx(1)


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_predict_and_convert_import_no_training_stack():
    """`tubelet predict` / `tubelet convert` stay light: no Lightning, DeepSpeed, Ray or W&B."""
    import subprocess
    import sys

    heavy = ("pytorch_lightning", "lightning_fabric", "deepspeed", "ray", "wandb")
    code = (
        "import sys, pretrain.evaluate.predict, pretrain.weights, pretrain.cli.convert, pretrain.models; "
        f"pretrain.weights; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == ""
