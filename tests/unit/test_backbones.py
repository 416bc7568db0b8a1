"""TimeSformer and ViViT backbones: every size builds, visible-token encoding under tube masks,
the factorised encoder's temporal context, checkpointing, classifier pooling, ZeRO-3 tracing."""

import pytest
import torch

from pretrain.masking import batch_masks
from pretrain.models import ArchSpec, VideoClassifier, VideoMAE
from pretrain.models.patches import patchify
from pretrain.models.sizes import SIZES

BACKBONES = ("vit", "timesformer", "vivit")


def spec_of(backbone: str, **values) -> ArchSpec:
    return ArchSpec.from_size(
        "tiny", img_size=32, num_frames=values.pop("num_frames", 8), backbone=backbone, **values
    )


def video_of(spec: ArchSpec, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(
        batch, 3, spec.num_frames, spec.img_size, spec.img_size, generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("size", sorted(SIZES))
def test_every_size_builds_with_every_backbone(size, backbone):
    spec = ArchSpec.from_size(size, backbone=backbone)
    with torch.device("meta"):  # shapes only: no memory for the large sizes
        model = VideoMAE(spec)
        classifier = VideoClassifier(spec, 400)
    assert model.encoder.spec.backbone == backbone
    names = {k for k in classifier.state_dict() if k.startswith("encoder.")}
    assert names <= set(model.state_dict())
    if backbone == "vivit":
        assert len(model.encoder.temporal_blocks) == SIZES[size].temporal_depth


def test_timesformer_b_has_the_published_parameter_count():
    """TimeSformer-B divided, 8 x 224, K400 head: about 121M parameters (Bertasius et al.)."""
    spec = ArchSpec.from_size("b", num_frames=8, tubelet_size=1, backbone="timesformer")
    with torch.device("meta"):
        count = sum(p.numel() for p in VideoClassifier(spec, 400).parameters())
    assert 120e6 < count < 122e6, count


@pytest.mark.parametrize("backbone", ["timesformer", "vivit"])
def test_visible_token_encoding_under_a_tube_mask(backbone):
    torch.manual_seed(0)
    spec = spec_of(backbone)
    model = VideoMAE(spec).eval()
    video = video_of(spec)
    patches = patchify(video, spec.tubelet_size, spec.patch_size)
    everything = torch.arange(spec.num_tokens).expand(2, -1)
    with torch.no_grad():  # all tokens through the index path == the dense path
        assert torch.allclose(model.encoder(patches, everything), model.encoder(patches), atol=1e-6)
        mask, decoder_mask = batch_masks(2, spec.grid, 0.5, 0.5, generator=torch.Generator().manual_seed(0))
        out = model(video, mask, decoder_mask)
    visible = (~mask).sum(1)
    assert out.decoder_tokens == int(visible[0]) + int((mask & decoder_mask).sum(1).max())
    assert torch.isfinite(out.loss)
    # the encoder sees only visible tokens: changing a hidden token's pixels changes nothing it encodes
    hidden_pixels = video.clone()
    first_hidden = int(mask[0].nonzero()[0])
    t, pos = divmod(first_hidden, spec.spatial_tokens)
    row, col = divmod(pos, spec.grid[2])
    p, k = spec.patch_size, spec.tubelet_size
    hidden_pixels[0, :, t * k : (t + 1) * k, row * p : (row + 1) * p, col * p : (col + 1) * p] += 5.0
    vis = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)[:, : int(visible[0])]
    with torch.no_grad():
        a = model.encode(patches, vis)
        b = model.encode(patchify(hidden_pixels, k, p), vis)
    assert torch.equal(a, b)


@pytest.mark.parametrize("backbone", ["timesformer", "vivit"])
def test_a_mask_that_is_not_a_tube_is_refused(backbone):
    spec = spec_of(backbone)
    model = VideoMAE(spec).eval()
    mask = torch.zeros(1, spec.num_tokens, dtype=torch.bool)
    mask[0, :8] = True  # 8 tokens of the first slice only: the slices differ
    with pytest.raises(ValueError, match=rf"backbone {backbone} needs a tube mask \(mask.kind=tube\)"):
        model(video_of(spec, batch=1), mask)


def test_factorised_encoder_gives_each_token_its_clip_temporal_context():
    """Shuffling the later time slices leaves slice 0's pixels alone, yet slice 0's tokens change:
    the temporal transformer's output of the slice reaches every token the decoder sees."""
    torch.manual_seed(0)
    spec = spec_of("vivit")  # 4 time slices
    model = VideoMAE(spec).eval()
    model.encoder.norm = torch.nn.Identity()  # look at the sum itself, before the final norm
    video = video_of(spec)
    k = spec.tubelet_size
    slices = video.unflatten(2, (-1, k))  # (B, C, T', k, H, W)
    shuffled = slices[:, :, [0, 3, 1, 2]].flatten(2, 3)
    mask, _ = batch_masks(2, spec.grid, 0.5, generator=torch.Generator().manual_seed(3))
    vis = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)[:, : int((~mask).sum(1)[0])]
    with torch.no_grad():
        before = model.encode(patchify(video, k, spec.patch_size), vis)  # (B, T' * n, D)
        after = model.encode(patchify(shuffled, k, spec.patch_size), vis)
    n = vis.shape[1] // spec.grid[0]
    assert (before[:, :n] - after[:, :n]).abs().max() > 1e-3  # slice 0: same pixels, new context
    # the content moved with its slice: slice 1 now shows old slice 3, whose spatial part is the same,
    # so the difference between the two is the temporal context alone (one vector per slice)
    moved = after[:, n : 2 * n] - before[:, 3 * n : 4 * n]  # (B, n, D)
    assert torch.allclose(moved, moved[:, :1].expand_as(moved), atol=1e-5)


def test_timesformer_mixes_time_only_through_temporal_attention():
    """With every temporal_fc at zero a TimeSformer is spatial attention per slice: slice 0's
    outputs ignore slice 1's pixels. A live temporal_fc carries them over."""
    torch.manual_seed(0)
    spec = spec_of("timesformer")
    encoder = VideoMAE(spec).eval().encoder
    video = video_of(spec)
    changed = video.clone()
    changed[:, :, spec.tubelet_size : 2 * spec.tubelet_size] += 3.0  # slice 1 only
    first = slice(1, 1 + spec.spatial_tokens)  # slice 0's tokens (after the class token)

    def slice0(clip):
        return encoder(patchify(clip, spec.tubelet_size, spec.patch_size))[:, first]

    with torch.no_grad():
        encoder.blocks[0].temporal_fc.weight.zero_()
        encoder.blocks[0].temporal_fc.bias.zero_()
        encoder.blocks[1].attn.proj.weight.zero_()  # no class-token path from slice 1 either
        encoder.blocks[0].attn.proj.weight.zero_()
        assert torch.allclose(slice0(video), slice0(changed), atol=1e-6)
        encoder.blocks[0].temporal_fc.weight.normal_()
        assert (slice0(video) - slice0(changed)).abs().max() > 1e-3


@pytest.mark.parametrize("backbone", ["timesformer", "vivit"])
def test_activation_checkpointing_gives_the_same_gradients(backbone):
    spec = spec_of(backbone)
    video = video_of(spec)
    mask, _ = batch_masks(2, spec.grid, 0.5, generator=torch.Generator().manual_seed(0))
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = VideoMAE(spec, grad_checkpointing=checkpointing)
        model(video, mask).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])
    assert "encoder.pos_embed" in grads[0] and "encoder.time_embed" in grads[0]


@pytest.mark.parametrize("backbone", ["timesformer", "vivit"])
def test_classifier_pools_the_class_token_and_decays_layers(backbone):
    torch.manual_seed(0)
    spec = spec_of(backbone)
    model = VideoClassifier(spec, num_classes=3).eval()
    video = video_of(spec)
    with torch.no_grad():
        tokens = model.encoder(patchify(video, spec.tubelet_size, spec.patch_size))
        assert torch.allclose(model(video), model.head(model.fc_norm(tokens[:, 0])), atol=1e-6)
    groups = model.param_groups(weight_decay=0.05, layer_decay=0.5)
    by_name = {name: g for g in groups for name in g["param_names"]}
    assert by_name["encoder.pos_embed"]["weight_decay"] == 0.0 and by_name["encoder.cls_token"][
        "lr_scale"
    ] == 0.5 ** (model.encoder.num_layers - 1)
    assert by_name["head.weight"]["lr_scale"] == 1.0
    if backbone == "vivit":
        assert by_name["encoder.time_embed"]["weight_decay"] == 0.0
        assert (
            by_name["encoder.temporal_blocks.0.attn.qkv.weight"]["lr_scale"] == 0.5
        )  # layer 3 of 0..4: after 2 spatial blocks, below the head
    with pytest.raises(ValueError, match="4 frames, the model takes 8"):
        model(torch.randn(1, 3, 4, 32, 32))


@pytest.mark.parametrize("backbone", ["timesformer", "vivit"])
def test_zero3_tracing_finds_what_the_encoders_read_outside_their_modules(backbone):
    """Parameters read by a parent (fused qkv through F.linear, the patch weight as a matmul, the
    decoder head rows, learned tables on the encoder) are found for registration; every other
    parameter belongs to a module that is called."""
    from pretrain.train.zero3 import dry_run_inputs, untracked_parameters

    spec = spec_of(backbone)
    model = VideoMAE(spec)
    inputs = dry_run_inputs(spec, 0.5, 0.5)
    found = {name: holder for name, holder, _ in untracked_parameters(model, lambda: model(**inputs))}
    assert found["encoder.blocks.0.attn.qkv.weight"] == "encoder.blocks.0.attn"
    assert found["encoder.blocks.0.attn.qkv.bias"] == "encoder.blocks.0.attn"
    assert found["encoder.patch_embed.proj.weight"] == "encoder.patch_embed"
    assert found["mask_token"] == ""
    if backbone == "timesformer":
        assert found["encoder.blocks.1.temporal_attn.qkv.weight"] == "encoder.blocks.1.temporal_attn"
    else:
        assert found["encoder.temporal_blocks.0.attn.qkv.weight"] == "encoder.temporal_blocks.0.attn"
    assert "encoder.pos_embed" not in found and "encoder.time_embed" not in found  # read by their own module


def test_config_names_the_mask_setting_a_backbone_cannot_take():
    from pretrain.config import ConfigError, load_config

    config = load_config("tiny", ["model.backbone=vivit", "model.temporal_depth=2"], stage="pretrain")
    assert (config.model.backbone, config.model.temporal_depth) == ("vivit", 2)
    with pytest.raises(ConfigError, match=r"mask.kind='random' cannot train model.backbone=timesformer"):
        load_config("tiny", ["model.backbone=timesformer", "mask.kind=random"], stage="pretrain")
    with pytest.raises(ConfigError, match=r"model.backbone='swin' is not allowed"):
        load_config("tiny", ["model.backbone=swin"], stage="pretrain")


@pytest.mark.parametrize(
    "backbone,class_token", [("vit", False), ("vit", True), ("timesformer", False), ("vivit", False)]
)
def test_analytic_flops_match_torch_flop_counter(backbone, class_token):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from pretrain.models.flops import classifier_forward_flops, videomae_forward_flops

    spec = spec_of(backbone, class_token=class_token)
    mask, decoder_mask = batch_masks(1, spec.grid, 0.5, 0.5, generator=torch.Generator().manual_seed(0))
    counters = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):  # attention as counted matmuls
        with counters[0]:
            out = VideoMAE(spec).eval()(video_of(spec, 1), mask, decoder_mask)
        with counters[1]:
            VideoClassifier(spec, 3).eval()(video_of(spec, 1))
    visible = spec.num_tokens - int(mask.sum())
    assert counters[0].get_total_flops() == videomae_forward_flops(spec, visible, int(out.target_mask.sum()))
    assert counters[1].get_total_flops() == classifier_forward_flops(spec, 3)


def test_input_normalization_travels_with_the_weights(tmp_path):
    """HF ViViT weights expect [-1, 1] inputs: the spec carries mean = std = 0.5 into the export,
    back out of it, and into every place that normalizes uint8 pixels for the model."""
    from pretrain.data.augment.transforms import normalize_video
    from pretrain.evaluate.views import score_batch
    from pretrain.train.module import model_video
    from pretrain.weights import build_model, load_weights, save_export

    spec = ArchSpec.from_size(
        "tiny",
        img_size=32,
        num_frames=4,
        class_token=True,
        key_bias=True,
        mlp_act="gelu_tanh",
        pixel_mean=(0.5,) * 3,
        pixel_std=(0.5,) * 3,
    )
    save_export(VideoClassifier(spec, 2), None, tmp_path / "export")
    state, model_config = load_weights(tmp_path / "export")
    model = build_model(state, model_config).eval()
    assert model.spec == spec and model.spec.pixel_mean == (0.5, 0.5, 0.5)
    pixels = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1, 1).expand(1, 3, 2, 1, 1)
    assert (
        normalize_video(pixels, mean=spec.pixel_mean, std=spec.pixel_std).flatten().tolist()
        == [-1.0, 1.0] * 3
    )
    video = torch.randint(0, 256, (1, 3, 4, 32, 32), dtype=torch.uint8)
    expected = video.float() / 127.5 - 1.0
    assert torch.allclose(model_video({"video": video}, spec), expected, atol=1e-6)
    batch = {"video": video[:, None], "label": torch.tensor([0]), "key": ["a"]}
    seen = []
    score_batch(
        lambda clips: seen.append(clips) or model(clips), batch, pixel_stats=(spec.pixel_mean, spec.pixel_std)
    )
    assert torch.allclose(seen[0], expected, atol=1e-6)


@pytest.mark.parametrize(
    "backbone,frames,tubelet,published",
    [("vit", 16, 2, 180), ("timesformer", 8, 1, 196), ("vivit", 32, 2, 284)],
)
def test_flop_count_matches_the_published_gflops_per_view(backbone, frames, tubelet, published):
    """Papers count multiply-adds: VideoMAE ViT-B 16x224 180 G, TimeSformer-B 8x224 196 G,
    ViViT-B FE 32x224 284 G per view."""
    from pretrain.models.flops import classifier_forward_flops

    spec = ArchSpec.from_size("b", num_frames=frames, tubelet_size=tubelet, backbone=backbone)
    assert classifier_forward_flops(spec, 400) / 2e9 == pytest.approx(published, rel=0.01)
