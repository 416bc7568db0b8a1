"""`pretrain.models.from_pretrained` from each kind of source, and the format registry's extension point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pretrain.errors import CheckpointError
from pretrain.models import VideoClassifier, VideoMAE, from_pretrained
from pretrain.models.classifier import make_linear_probe
from pretrain.models.videomae import IMAGENET_MEAN, IMAGENET_STD
from pretrain.models.vit import ArchSpec
from pretrain.weights import (
    FORMATS, Weights, WeightsFormat, describe, detect_format, register_format, save_export, save_hf,
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
    assert isinstance(loaded, VideoMAE) and loaded.class_names is None and detect_format(tmp_path / "hf") == "hf"
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
