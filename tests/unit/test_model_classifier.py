"""Fine-tuning classifier: logits, shared encoder names, layer-wise lr decay groups."""

import pytest
import torch

from pretrain.models import ArchSpec, VideoClassifier, VideoMAE, build_classifier

SPEC = ArchSpec.from_size("tiny", img_size=32, num_frames=4)


def test_logits_are_mean_pooled_head():
    torch.manual_seed(0)
    model = VideoClassifier(SPEC, num_classes=5, head_dropout=0.5).eval()
    video = torch.randn(2, 3, 4, 32, 32)
    logits = model(video)
    assert logits.shape == (2, 5)
    from pretrain.models.patches import patchify

    tokens = model.encoder(patchify(video, 2, 16))  # (B, N, D)
    expected = model.head(model.fc_norm(tokens.mean(1)))
    assert torch.allclose(logits, expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(B, 3, 4, 32, 32\).*got \(2, 3, 8, 32, 32\)"):
        model(torch.randn(2, 3, 8, 32, 32))


def test_encoder_names_match_pretraining_model():
    pretrain_names = {k for k in VideoMAE(SPEC).state_dict() if k.startswith("encoder.")}
    classifier_names = {k for k in VideoClassifier(SPEC, 3).state_dict() if k.startswith("encoder.")}
    # mean pooling replaces the final encoder norm with fc_norm; everything else is shared by name
    assert pretrain_names - classifier_names == {"encoder.norm.weight", "encoder.norm.bias"}
    assert classifier_names <= pretrain_names


def test_layer_decay_groups():
    model = VideoClassifier(SPEC, 3)
    groups = model.param_groups(weight_decay=0.05, layer_decay=0.5)
    names = [n for g in groups for n in g["param_names"]]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())  # each exactly once
    by_name = {n: g for g in groups for n in g["param_names"]}
    depth = SPEC.depth  # 2: layers 0 (embed), 1..2 (blocks), 3 (head)
    assert by_name["encoder.patch_embed.proj.weight"]["lr_scale"] == pytest.approx(0.5 ** (depth + 1))
    assert by_name["encoder.blocks.0.attn.qkv.weight"]["lr_scale"] == pytest.approx(0.5**depth)
    assert by_name["encoder.blocks.1.mlp.fc1.weight"]["lr_scale"] == pytest.approx(0.5)
    assert by_name["head.weight"]["lr_scale"] == 1.0
    for name in (
        "head.bias",
        "fc_norm.weight",
        "encoder.blocks.0.norm1.weight",
        "encoder.blocks.0.attn.q_bias",
        "encoder.patch_embed.proj.bias",
    ):
        assert by_name[name]["weight_decay"] == 0.0, name
    for name in ("head.weight", "encoder.blocks.0.attn.qkv.weight", "encoder.patch_embed.proj.weight"):
        assert by_name[name]["weight_decay"] == 0.05, name
    torch.optim.AdamW(groups, lr=1e-3)  # groups are valid optimizer input


def test_builder_and_bad_class_count():
    from pretrain.config import ModelConfig

    cfg = ModelConfig(size="tiny", img_size=32, num_frames=4)
    model = build_classifier(cfg, num_classes=7, head_dropout=0.3)
    assert model.head.out_features == 7 and model.head_dropout.p == 0.3
    assert float(model.head.weight.detach().abs().max()) < 0.01  # head starts small (init scale 0.001)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        build_classifier(cfg, num_classes=0)
