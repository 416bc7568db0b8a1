"""Weight interop of the new backbones with randomly initialized Hugging Face models (nothing is
downloaded): TimeSformer and ViViT, both directions, and original TimeSformer names -> Tubelet."""

import pytest
import torch
from transformers import (
    TimesformerConfig,
    TimesformerForVideoClassification,
    TimesformerModel,
    VivitConfig,
    VivitForVideoClassification,
    VivitModel,
)

from pretrain.models.backbones import build_encoder
from pretrain.models.classifier import VideoClassifier
from pretrain.weights import timesformer_hf, timesformer_original, vivit_hf

ATOL = 1e-5
TIMESFORMER_CONFIGS = [
    dict(
        image_size=32,
        patch_size=16,
        num_frames=4,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    ),
    dict(
        image_size=24,
        patch_size=8,
        num_frames=3,
        hidden_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=96,
        qkv_bias=False,
        layer_norm_eps=1e-5,
    ),
]
VIVIT_CONFIGS = [
    dict(
        image_size=32,
        num_frames=4,
        tubelet_size=[2, 16, 16],
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    ),
    dict(
        image_size=24,
        num_frames=6,
        tubelet_size=[3, 8, 8],
        hidden_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=96,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    ),
]


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Every tensor random (HF inits some at zero or one), so no mapping error can hide."""
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn_like(param) * 0.2)
    return model.eval()


def ours_from(state, spec, kind):
    if kind == "classifier":
        model = VideoClassifier(spec, int(state["head.weight"].shape[0]))
        model.load_state_dict(state, strict=True)
        return model.eval()
    encoder = build_encoder(spec, final_norm=True)
    encoder.load_state_dict(
        {k.removeprefix("encoder."): v for k, v in state.items() if not k.startswith("pooler.")}, strict=True
    )
    return encoder.eval()


def clip(config: dict, batch: int = 2) -> torch.Tensor:
    size = config["image_size"]
    return torch.randn(batch, config["num_frames"], 3, size, size, generator=torch.Generator().manual_seed(1))


def assert_same_tensors(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


FAMILIES = {
    "timesformer": (
        timesformer_hf,
        TimesformerConfig,
        TimesformerForVideoClassification,
        TIMESFORMER_CONFIGS,
    ),
    "vivit": (vivit_hf, VivitConfig, VivitForVideoClassification, VIVIT_CONFIGS),
}
CLASSIFIER_CASES = [(family, i) for family, (*_, configs) in FAMILIES.items() for i in range(len(configs))]


@pytest.mark.parametrize("family,index", CLASSIFIER_CASES)
def test_classifier_matches_hf_both_ways(family, index):
    converter, config_class, hf_class, configs = FAMILIES[family]
    values = configs[index]
    config = config_class(**values, num_labels=5)
    hf = randomized(hf_class(config))
    state = converter.state_dict_from_hf(hf.state_dict())
    spec = converter.spec_from_hf_config(config.to_dict())
    if family == "vivit":  # HF ViViT is Model 1: a vit with a class token, inputs in [-1, 1]
        assert (spec.backbone, spec.class_token, spec.pixel_mean, spec.pixel_std) == (
            "vit",
            True,
            (0.5,) * 3,
            (0.5,) * 3,
        )
    ours = ours_from(state, spec, "classifier")
    video = clip(values)  # (B, T, C, H, W), HF's layout
    with torch.no_grad():
        expected, got = hf(video).logits, ours(video.transpose(1, 2))
    assert (got - expected).abs().max() < ATOL
    assert_same_tensors(converter.state_dict_to_hf(state, "classifier"), hf.state_dict())


@pytest.mark.parametrize("values", TIMESFORMER_CONFIGS)
def test_timesformer_encoder_tokens_match_hf_in_our_order(values):
    config = TimesformerConfig(**values)
    hf = randomized(TimesformerModel(config))
    state = timesformer_hf.state_dict_from_hf(hf.state_dict())
    ours = ours_from(state, timesformer_hf.spec_from_hf_config(config.to_dict()), "encoder")
    video = clip(values)
    from pretrain.models.patches import patchify

    with torch.no_grad():
        theirs = hf(video).last_hidden_state  # (B, 1 + H'W' * T, D), order (h, w, t)
        mine = ours(patchify(video.transpose(1, 2), 1, values["patch_size"]))  # (B, 1 + T * H'W', D)
    b, _, d = theirs.shape
    reordered = theirs[:, 1:].view(b, -1, values["num_frames"], d).transpose(1, 2).reshape(b, -1, d)
    assert (mine[:, 0] - theirs[:, 0]).abs().max() < ATOL
    assert (mine[:, 1:] - reordered).abs().max() < ATOL
    assert_same_tensors(timesformer_hf.state_dict_to_hf(state, "encoder"), hf.state_dict())


def test_timesformer_refuses_other_frame_counts():
    values = TIMESFORMER_CONFIGS[0]
    config = TimesformerConfig(**values, num_labels=3)
    state = timesformer_hf.state_dict_from_hf(
        randomized(TimesformerForVideoClassification(config)).state_dict()
    )
    ours = ours_from(state, timesformer_hf.spec_from_hf_config(config.to_dict()), "classifier")
    with pytest.raises(ValueError, match=r"8 frames, the model takes 4"):
        ours(torch.randn(1, 3, 8, 32, 32))


def original_names(hf_state: dict) -> dict:
    """HF TimeSformer classifier -> the facebookresearch checkpoint layout, by the documented
    renaming (temporal_dense -> temporal_fc, temporal_layernorm -> temporal_norm1, ...), wrapped
    the way its `.pyth` files are (`model_state`, `model.` prefix)."""
    renames = [
        ("timesformer.embeddings.patch_embeddings.projection", "patch_embed.proj"),
        ("timesformer.embeddings.position_embeddings", "pos_embed"),
        ("timesformer.embeddings.time_embeddings", "time_embed"),
        ("timesformer.embeddings.cls_token", "cls_token"),
        ("timesformer.encoder.layer.", "blocks."),
        ("timesformer.layernorm", "norm"),
        ("classifier", "head"),
        ("temporal_attention.attention.qkv", "temporal_attn.qkv"),
        ("temporal_attention.output.dense", "temporal_attn.proj"),
        ("temporal_dense", "temporal_fc"),
        ("temporal_layernorm", "temporal_norm1"),
        ("attention.attention.qkv", "attn.qkv"),
        ("attention.output.dense", "attn.proj"),
        ("layernorm_before", "norm1"),
        ("layernorm_after", "norm2"),
        ("intermediate.dense", "mlp.fc1"),
        ("output.dense", "mlp.fc2"),
    ]
    out = {}
    for name, tensor in hf_state.items():
        for old, new in renames:
            name = name.replace(old, new)
        out[f"model.{name}"] = tensor
    return {"model_state": out, "epoch": 15}


def test_original_timesformer_checkpoint_loads_with_hf_logits():
    values = TIMESFORMER_CONFIGS[0]
    config = TimesformerConfig(**values, num_labels=4)
    hf = randomized(TimesformerForVideoClassification(config))
    checkpoint = original_names(hf.state_dict())
    assert "model.blocks.0.temporal_fc.weight" in checkpoint["model_state"]
    assert timesformer_original.is_original_timesformer(checkpoint["model_state"])
    state = timesformer_original.state_dict_from_original(checkpoint)
    assert sorted(state) == sorted(timesformer_hf.state_dict_from_hf(hf.state_dict()))
    spec = timesformer_original.spec_from_original(state)
    assert (spec.img_size, spec.num_frames, spec.patch_size, spec.depth) == (32, 4, 16, 2)
    spec = type(spec).from_dict({**spec.to_dict(), "heads": 2})  # heads are not in the tensors
    ours = ours_from(state, spec, "classifier")
    video = clip(values)
    with torch.no_grad():
        assert (ours(video.transpose(1, 2)) - hf(video).logits).abs().max() < ATOL


@pytest.mark.parametrize("values", VIVIT_CONFIGS)
def test_vivit_encoder_matches_hf_and_keeps_the_pooler(values):
    config = VivitConfig(**values)
    hf = randomized(VivitModel(config))
    state = vivit_hf.state_dict_from_hf(hf.state_dict())
    assert "pooler.dense.weight" in state
    ours = ours_from(state, vivit_hf.spec_from_hf_config(config.to_dict()), "encoder")
    video = clip(values)
    from pretrain.models.patches import patchify

    tubelet, patch = values["tubelet_size"][:2]
    with torch.no_grad():
        theirs = hf(video).last_hidden_state  # (B, 1 + N, D), (t, h, w) order like ours
        mine = ours(patchify(video.transpose(1, 2), tubelet, patch))
    assert (mine - theirs).abs().max() < ATOL
    assert_same_tensors(vivit_hf.state_dict_to_hf(state, "encoder"), hf.state_dict())


def test_vivit_reads_the_older_hf_layout():
    config = VivitConfig(**VIVIT_CONFIGS[0], num_labels=3)
    current = randomized(VivitForVideoClassification(config)).state_dict()
    older = {}
    for name, tensor in current.items():
        for new, old in (
            ("vivit.layers.", "vivit.encoder.layer."),
            ("attention.o_proj", "attention.output.dense"),
            ("attention.q_proj", "attention.attention.query"),
            ("attention.k_proj", "attention.attention.key"),
            ("attention.v_proj", "attention.attention.value"),
            ("mlp.fc1", "intermediate.dense"),
            ("mlp.fc2", "output.dense"),
        ):
            name = name.replace(new, old)
        older[name] = tensor
    assert_same_tensors(vivit_hf.state_dict_from_hf(older), vivit_hf.state_dict_from_hf(current))


def test_unknown_hf_tensors_are_named():
    config = VivitConfig(**VIVIT_CONFIGS[0], num_labels=3)
    state = dict(VivitForVideoClassification(config).state_dict(), **{"vivit.extra.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="vivit.extra.weight"):
        vivit_hf.state_dict_from_hf(state)


def test_hf_folders_load_both_ways(tmp_path):
    """save_pretrained folders of both families read into models with HF's logits; our folders
    load back into transformers with ours."""
    from pretrain.weights.backbone_folders import read_hf_backbone, save_hf_backbone

    cases = [
        (TimesformerForVideoClassification, TimesformerConfig(**TIMESFORMER_CONFIGS[0], num_labels=3)),
        (VivitForVideoClassification, VivitConfig(**VIVIT_CONFIGS[0], num_labels=3)),
    ]
    for hf_class, config in cases:
        hf = randomized(hf_class(config))
        hf.save_pretrained(tmp_path / config.model_type)
        state, model_config = read_hf_backbone(tmp_path / config.model_type)
        assert model_config["kind"] == "classifier" and model_config["class_names"] == [
            "LABEL_0",
            "LABEL_1",
            "LABEL_2",
        ]
        spec = ours_spec(model_config)
        assert spec.backbone == ("timesformer" if config.model_type == "timesformer" else "vit")
        ours = ours_from(state, spec, "classifier")
        video = clip(config.to_dict())
        with torch.no_grad():
            assert (ours(video.transpose(1, 2)) - hf(video).logits).abs().max() < ATOL
        save_hf_backbone(state, model_config, tmp_path / f"ours-{config.model_type}", ["a", "b", "c"])
        back = hf_class.from_pretrained(tmp_path / f"ours-{config.model_type}").eval()
        assert back.config.id2label[2] == "c"
        with torch.no_grad():
            assert (back(video).logits - hf(video).logits).abs().max() < ATOL


def ours_spec(model_config):
    from pretrain.models.arch import ArchSpec

    return ArchSpec.from_dict(model_config)


def test_original_timesformer_file_reads_safely(tmp_path):
    from pretrain.weights.backbone_folders import is_original_timesformer_file, read_original_timesformer

    config = TimesformerConfig(**TIMESFORMER_CONFIGS[0], num_labels=4)
    hf = randomized(TimesformerForVideoClassification(config))
    torch.save(original_names(hf.state_dict()), tmp_path / "TimeSformer_divST_8x32_224_K400.pyth")
    torch.save({"model": {"patch_embed.proj.weight": torch.zeros(2, 3, 16, 16)}}, tmp_path / "other.pth")
    assert is_original_timesformer_file(tmp_path / "TimeSformer_divST_8x32_224_K400.pyth")
    assert not is_original_timesformer_file(tmp_path / "other.pth")
    state, model_config = read_original_timesformer(
        tmp_path / "TimeSformer_divST_8x32_224_K400.pyth", heads=2
    )
    ours = ours_from(state, ours_spec(model_config), "classifier")
    video = clip(TIMESFORMER_CONFIGS[0])
    with torch.no_grad():
        assert (ours(video.transpose(1, 2)) - hf(video).logits).abs().max() < ATOL
