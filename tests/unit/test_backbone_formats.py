"""The weights registry knows TimeSformer and ViViT: HF folders and original TimeSformer `.pyth`
files are detected, built and converted by the same entries as VideoMAE's (`from_pretrained`,
`tubelet convert`, `finetune.init`)."""

import pytest
import torch

transformers = pytest.importorskip("transformers")

from pretrain.config import load_config  # noqa: E402
from pretrain.errors import CheckpointError  # noqa: E402
from pretrain.models import VideoClassifier, build_finetune_model  # noqa: E402
from pretrain.models.arch import ArchSpec  # noqa: E402
from pretrain.train.finetune_init import initialise  # noqa: E402
from pretrain.weights import (  # noqa: E402
    convert_weights,
    detect_format,
    from_pretrained,  # noqa: E402
    save_export,
)

TINY_TIMESFORMER = dict(
    image_size=32,
    patch_size=16,
    num_frames=4,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=256,
)


@pytest.fixture(scope="module")
def hf_timesformer(tmp_path_factory):
    root = tmp_path_factory.mktemp("tsf")
    torch.manual_seed(0)
    config = transformers.TimesformerConfig(
        **TINY_TIMESFORMER, num_labels=3, id2label={0: "up", 1: "down", 2: "still"}
    )
    hf = transformers.TimesformerForVideoClassification(config).eval()
    hf.save_pretrained(root / "hf")
    return hf, root


def test_hf_timesformer_folder_through_from_pretrained_and_convert(hf_timesformer, tmp_path):
    hf, root = hf_timesformer
    assert detect_format(root / "hf") == "hf-backbone"
    model = from_pretrained(root / "hf")
    assert isinstance(model, VideoClassifier) and model.class_names == ["up", "down", "still"]
    video = torch.randn(2, 4, 3, 32, 32)
    with torch.no_grad():
        assert (model(video.transpose(1, 2)) - hf(video).logits).abs().max() < 1e-5
    convert_weights(root / "hf", tmp_path / "export", to="tubelet")
    convert_weights(tmp_path / "export", tmp_path / "back", to="hf")
    back = transformers.TimesformerForVideoClassification.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        assert (back(video).logits - hf(video).logits).abs().max() < 1e-5


def test_finetune_init_from_hf_timesformer(hf_timesformer):
    hf, root = hf_timesformer
    config = load_config(
        "finetune/tiny",
        [
            f"finetune.init={root / 'hf'}",
            "model.backbone=timesformer",
            "model.tubelet_size=1",
            "model.img_size=32",
            "model.num_frames=4",
        ],
        stage="finetune",
    )
    model = build_finetune_model(config, num_classes=3)
    report = initialise(model, config)
    assert report["format"] == "hf-timesformer" and report["tensors"] == len(model.encoder.state_dict())
    assert torch.equal(model.encoder.time_embed, hf.timesformer.embeddings.time_embeddings)


def test_finetune_init_resizes_learned_tables_to_another_clip(hf_timesformer, caplog):
    _, root = hf_timesformer
    config = load_config(
        "finetune/tiny",
        [
            f"finetune.init={root / 'hf'}",
            "model.backbone=timesformer",
            "model.tubelet_size=1",
            "model.img_size=64",
            "model.num_frames=8",
        ],
        stage="finetune",
    )
    model = build_finetune_model(config, num_classes=3)
    with caplog.at_level("INFO"):
        initialise(model, config)
    assert "pos_embed 2x2 -> 4x4" in caplog.text and "time_embed 4 -> 8" in caplog.text


def test_original_timesformer_pyth_and_factorised_vivit_to_hf(tmp_path):
    from test_backbone_interop import TIMESFORMER_CONFIGS, original_names, randomized

    hf = randomized(
        transformers.TimesformerForVideoClassification(
            transformers.TimesformerConfig(**TIMESFORMER_CONFIGS[0], num_labels=4)
        )
    )
    torch.save(original_names(hf.state_dict()), tmp_path / "TimeSformer_divST_8x32_224_K400.pyth")
    assert detect_format(tmp_path / "TimeSformer_divST_8x32_224_K400.pyth") == "timesformer"
    model = from_pretrained(tmp_path / "TimeSformer_divST_8x32_224_K400.pyth")
    assert model.spec.backbone == "timesformer" and model.spec.num_frames == 4
    vivit = VideoClassifier(ArchSpec.from_size("tiny", img_size=32, num_frames=4, backbone="vivit"), 2)
    save_export(vivit, None, tmp_path / "vivit")
    with pytest.raises(CheckpointError, match="transformers has no ViViT factorised encoder"):
        convert_weights(tmp_path / "vivit", tmp_path / "vivit_hf", to="hf")
