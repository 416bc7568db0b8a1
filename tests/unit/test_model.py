"""VideoMAE pretraining model: shapes, errors, loss definition, V2 decoder masking, reconstruction."""

import pytest
import torch

from pretrain.masking import batch_masks
from pretrain.models import ArchSpec, VideoMAE, build_pretraining_model, masked_video
from pretrain.models.blocks import sinusoid_position_table
from pretrain.models.patches import channels_first, channels_last, patchify, unpatchify
from pretrain.models.videomae import VideoMAEOutput, plan_tokens

SPEC = ArchSpec.from_size("tiny", img_size=32, num_frames=4)  # grid (2, 2, 2) = 8 tokens
MEAN = torch.tensor([0.485, 0.456, 0.406])
STD = torch.tensor([0.229, 0.224, 0.225])


def make_model(**kwargs) -> VideoMAE:
    torch.manual_seed(0)
    return VideoMAE(SPEC, **kwargs).eval()


def reference_targets(video: torch.Tensor, norm_pix: bool = True) -> torch.Tensor:
    """Targets for every token, written the long way: un-normalize, cube per channel, normalize."""
    pixels = video * STD[None, :, None, None, None] + MEAN[None, :, None, None, None]
    b = video.shape[0]
    cubes = pixels.view(b, 3, 2, 2, 2, 16, 2, 16).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, 8, 512, 3)
    if norm_pix:
        cubes = (cubes - cubes.mean(-2, keepdim=True)) / (
            cubes.var(-2, unbiased=True, keepdim=True).sqrt() + 1e-6
        )
    return cubes.flatten(2)


@pytest.fixture
def video():
    torch.manual_seed(1)
    return torch.randn(3, 3, 4, 32, 32)


def test_position_table_is_sin_cos():
    table = sinusoid_position_table(10, 8)
    assert table.shape == (10, 8)
    assert torch.allclose(table[3, 0], torch.sin(torch.tensor(3.0)))
    assert torch.allclose(table[3, 1], torch.cos(torch.tensor(3.0)))
    assert torch.allclose(table[3, 2], torch.sin(torch.tensor(3.0 / 10000 ** (2 / 8))))


def test_patchify_roundtrip(video):
    patches = patchify(video, 2, 16)
    assert patches.shape == (3, 8, 2 * 16 * 16 * 3)
    assert torch.equal(unpatchify(patches, SPEC), video)
    assert torch.equal(patches[0, 1, :16], video[0, 0, 0, 0, 16:32])  # channel-first: a row of pixels
    assert torch.equal(channels_first(channels_last(patches)), patches)
    assert torch.equal(channels_last(patches)[0, 1, :3], video[0, :, 0, 0, 16])  # prediction order: RGB


def test_forward_shapes_and_loss_over_hidden_tokens(video):
    model = make_model()
    mask, _ = batch_masks(3, SPEC.grid, 0.5, generator=torch.Generator().manual_seed(0))
    out = model(video, mask)
    assert out.pred.shape == (3, 4, SPEC.patch_dim)
    assert torch.equal(out.target_mask, mask)
    assert out.decoder_tokens == 8
    expected = torch.stack([reference_targets(video)[b][mask[b]] for b in range(3)])  # (B, 4, P)
    assert torch.allclose(out.loss, ((out.pred - expected) ** 2).mean(), atol=1e-6)


def test_loss_without_norm_pix_uses_unnormalized_pixels(video):
    model = make_model(norm_pix_loss=False)
    mask, _ = batch_masks(3, SPEC.grid, 0.5, generator=torch.Generator().manual_seed(0))
    out = model(video, mask)
    expected = torch.stack([reference_targets(video, norm_pix=False)[b][mask[b]] for b in range(3)])
    assert torch.allclose(out.loss, ((out.pred - expected) ** 2).mean(), atol=1e-6)


@pytest.mark.parametrize(
    "video_shape, mask_shape, message",
    [
        ((2, 3, 6, 32, 32), (2, 8), r"\(B, 3, 4, 32, 32\).*got \(2, 3, 6, 32, 32\)"),
        ((2, 4, 3, 32, 32), (2, 8), r"got \(2, 4, 3, 32, 32\)"),
        (
            (2, 3, 4, 32, 32),
            (2, 9),
            r"mask must be bool with shape \(B, N\) = \(2, 8\); got torch.bool \(2, 9\)",
        ),
    ],
)
def test_wrong_shapes_raise(video_shape, mask_shape, message):
    with pytest.raises(ValueError, match=message):
        make_model()(torch.zeros(video_shape), torch.zeros(mask_shape, dtype=torch.bool))


def test_mask_errors(video):
    model = make_model()
    with pytest.raises(ValueError, match="mask must be bool"):
        model(video, torch.zeros(3, 8, dtype=torch.long))
    uneven = torch.zeros(3, 8, dtype=torch.bool)
    uneven[0, :4], uneven[1, :3], uneven[2, :4] = True, True, True
    with pytest.raises(ValueError, match=r"same number of tokens in every row; got \[4, 3, 4\]"):
        model(video, uneven)


def test_drop_path_and_checkpointing_keep_outputs(video):
    mask, _ = batch_masks(3, SPEC.grid, 0.5, generator=torch.Generator().manual_seed(0))
    plain = make_model()
    dropping = make_model(drop_path=0.5)
    dropping.load_state_dict(plain.state_dict())
    assert torch.equal(plain(video, mask).loss, dropping(video, mask).loss)  # eval: drop path is off
    checkpointed = make_model(grad_checkpointing=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    plain.train()
    loss_a, loss_b = plain(video, mask).loss, checkpointed(video, mask).loss
    loss_a.backward()
    loss_b.backward()
    assert torch.allclose(loss_a, loss_b, atol=1e-7)
    for (name, p), q in zip(plain.named_parameters(), checkpointed.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    dropping.train()
    assert not torch.equal(dropping(video, mask).loss, loss_a)  # train: blocks are dropped


def test_decoder_mask_restricts_targets_and_decoder_input(video):
    """V2: loss only on hidden & kept tokens, decoder input = visible + hidden-and-kept tokens."""
    model = make_model()
    mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0]] * 3, dtype=torch.bool)
    decoder_mask = torch.tensor([[1, 0, 1, 0, 1, 0, 1, 0]] * 3, dtype=torch.bool)
    out = model(video, mask, decoder_mask)
    assert torch.equal(out.target_mask, mask & decoder_mask)
    assert out.pred.shape == (3, 2, SPEC.patch_dim)
    assert out.decoder_tokens == 4 + 2
    expected = torch.stack([reference_targets(video)[b][(mask & decoder_mask)[b]] for b in range(3)])
    assert torch.allclose(out.loss, ((out.pred - expected) ** 2).mean(), atol=1e-6)


def test_decoder_mask_with_uneven_rows_pads_without_leaking(video):
    model = make_model()
    mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0]] * 3, dtype=torch.bool)
    decoder_mask = torch.tensor(
        [[1, 1, 1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool
    )
    out = model(video, mask, decoder_mask)
    counts = (mask & decoder_mask).sum(1).tolist()
    assert counts == [4, 1, 2] and out.pred.shape[1] == 4
    targets = reference_targets(video)
    errors = [
        ((out.pred[b, :n] - targets[b][(mask & decoder_mask)[b]]) ** 2).mean(-1) for b, n in enumerate(counts)
    ]
    assert torch.allclose(out.loss, torch.cat(errors).mean(), atol=1e-6)
    for b in range(3):  # padding slots must not change a row's predictions
        alone = model(video[b : b + 1], mask[b : b + 1], decoder_mask[b : b + 1])
        assert torch.allclose(alone.pred[0], out.pred[b, : counts[b]], atol=1e-5)


def test_decoder_mask_without_any_target_raises(video):
    mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0]] * 3, dtype=torch.bool)
    with pytest.raises(ValueError, match="no token is both hidden"):
        make_model()(video, mask, ~mask)


def test_reconstruct_inverts_per_cube_normalization(video):
    model = make_model()
    mask, decoder_mask = torch.tensor([[1, 1, 0, 0, 1, 1, 0, 0]] * 3, dtype=torch.bool), None
    plan = plan_tokens(mask, decoder_mask)
    targets = model.targets(patchify(video, 2, 16), plan.target).flatten(2)  # (B, n, C*tpp)
    expected = torch.stack([reference_targets(video)[b][mask[b]] for b in range(3)])  # prediction order
    assert torch.allclose(channels_last(targets), expected, atol=1e-5)
    perfect = VideoMAEOutput(torch.tensor(0.0), targets, mask, 8)
    assert torch.equal(perfect.pred, channels_last(targets))
    recon = model.reconstruct(video, mask, perfect)
    pixels = (video * STD[None, :, None, None, None] + MEAN[None, :, None, None, None]).clamp(0, 1)
    assert recon.shape == video.shape
    assert torch.allclose(recon, pixels, atol=1e-4)
    shown = masked_video(video, mask, SPEC)
    hidden = unpatchify(mask[..., None].expand(-1, -1, SPEC.patch_dim).float(), SPEC).bool()
    assert float(shown[hidden].abs().max()) == 0.0 and torch.allclose(
        shown[~hidden], pixels[~hidden], atol=1e-6
    )


def test_builder_reads_model_config():
    from pretrain.config import ModelConfig

    model = build_pretraining_model(
        ModelConfig(
            size="tiny",
            img_size=64,
            num_frames=8,
            drop_path=0.1,
            norm_pix_loss=False,
            grad_checkpointing=True,
        )
    )
    assert model.spec.grid == (4, 4, 4) and model.spec.dim == 64
    assert not model.norm_pix_loss and model.grad_checkpointing
    assert model.encoder.blocks[-1].drop_path.prob == pytest.approx(0.1)
    assert model.encoder.pos_embed.shape == (64, 64)
    assert "encoder.pos_embed" not in model.state_dict()  # fixed table, recomputed, never stored
