"""Clip transforms: crops, resize, normalize, random erasing, RandAugment (vs PIL), mixup."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pretrain.data.augment import randaugment, transforms
from pretrain.data.augment.mixup import Mixup, smooth_one_hot
from pretrain.data.video import crop


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_clip(frames: int = 4, height: int = 24, width: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (frames, 3, height, width), dtype=torch.uint8, generator=generator)


# ------------------------------------------------------------------ crop boxes


def test_multi_scale_crop_follows_videomae():
    height, width, size = 240, 320, 224
    scale_index = {240: 0, 210: 1, 180: 2, 158: 3}  # int(240 × scale); none within 3 px of 224
    allowed = set(scale_index)
    fixed = {
        (0, 0),
        (0, 4),
        (4, 0),
        (4, 4),
        (2, 2),
        (2, 0),
        (2, 4),
        (4, 2),
        (0, 2),
        (1, 1),
        (1, 3),
        (3, 1),
        (3, 3),
    }  # (row, column) in quarter steps of the free space
    seen = set()
    for seed in range(2000):
        top, left, h, w = transforms.multi_scale_crop_box(height, width, size, rng(seed))
        assert h in allowed and w in allowed and abs(scale_index[h] - scale_index[w]) <= 1
        assert 0 <= top <= height - h and 0 <= left <= width - w
        step_h, step_w = (height - h) // 4, (width - w) // 4
        matches = {(r, c) for r, c in fixed if r * step_h == top and c * step_w == left}
        assert matches, (top, left, h, w)
        if (h, w) == (180, 180):
            seen |= matches
    assert seen == fixed  # all 13 positions are used


def test_random_resized_crop_area_and_aspect():
    for seed in range(300):
        top, left, h, w = transforms.random_resized_crop_box(120, 160, rng(seed), (0.08, 1.0))
        assert top >= 0 and top + h <= 120 and left >= 0 and left + w <= 160
        assert 0.07 <= h * w / (120 * 160) <= 1.0
        if (h, w) != (120, 160):
            assert 3 / 4 - 0.05 <= w / h <= 4 / 3 + 0.05


def test_spatial_views_cover_the_long_side():
    boxes = transforms.spatial_view_boxes(64, 100, 64, 3)
    assert boxes == [(0, 0, 64, 64), (0, 18, 64, 64), (0, 36, 64, 64)]
    assert transforms.spatial_view_boxes(100, 64, 64, 1) == [(18, 0, 64, 64)]


def test_conversion_size_only_shrinks_a_lot():
    assert transforms.conversion_size(640, 480, 120) == (160, 120)
    assert transforms.conversion_size(320, 240, 120) == (160, 120)
    assert transforms.conversion_size(320, 240, 224) is None  # small shrink: native, resize later
    assert transforms.conversion_size(320, 240, 400) is None


def test_short_side_size():
    assert transforms.short_side_size(320, 240, 224) == (299, 224)
    assert transforms.short_side_size(240, 320, 224) == (224, 299)


# ------------------------------------------------------------------ pixel transforms


def test_crop_resize_applies_the_same_crop_to_every_frame():
    base = random_clip(1)
    clip = torch.cat([base, base, base])  # (3, 3, H, W): identical frames
    out = crop.crop_resize(clip, (2, 4, 16, 20), 8)
    assert out.shape == (3, 3, 8, 8) and out.dtype == torch.uint8
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    exact = crop.crop_resize(clip, (2, 4, 8, 8), 8)
    assert torch.equal(exact, clip[:, :, 2:10, 4:12])


def test_hflip_and_layout():
    clip = random_clip()
    assert torch.equal(crop.hflip(clip)[..., 0], clip[..., -1])
    assert transforms.to_model_layout(clip).shape == (3, 4, 24, 32)


def test_normalize_video_matches_imagenet_formula():
    video = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 1, 2).expand(3, 2, 1, 2)  # (C, T, H, W)
    out = transforms.normalize_video(video)
    for c in range(3):
        mean, std = transforms.IMAGENET_MEAN[c], transforms.IMAGENET_STD[c]
        assert out[c, 0, 0, 0].item() == pytest.approx(-mean / std, abs=1e-5)
        assert out[c, 0, 0, 1].item() == pytest.approx((1 - mean) / std, abs=1e-5)
    batch = video.unsqueeze(0).float()  # (B, C, T, H, W), float pixels normalize the same way
    assert torch.allclose(transforms.normalize_video(batch)[0], out)


@pytest.mark.parametrize("normalized", [True, False])
def test_random_erasing_erases_one_box_on_every_frame(normalized):
    video = transforms.to_model_layout(torch.full((4, 3, 32, 32), 100, dtype=torch.uint8))
    video = video.float() if normalized else video
    before = video.clone()
    out = transforms.random_erasing(video, rng(1), probability=1.0, normalized=normalized)
    changed = (out != before).any(dim=0)  # (T, H, W)
    assert changed.any() and all(torch.equal(changed[0], changed[t]) for t in range(4))
    rows, cols = changed[0].nonzero(as_tuple=True)
    box_area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
    assert changed[0].sum() >= 0.9 * box_area  # one rectangle
    assert out.dtype == before.dtype
    untouched = transforms.random_erasing(before.clone(), rng(1), probability=0.0, normalized=normalized)
    assert torch.equal(untouched, before)


# ------------------------------------------------------------------ RandAugment


def pil_frames(clip: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(frame.permute(1, 2, 0).numpy()) for frame in clip]


def from_pil(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([torch.from_numpy(np.array(image)).permute(2, 0, 1) for image in images])


@pytest.mark.parametrize(
    "name, reference",
    [
        ("Equalize", ImageOps.equalize),
        ("Invert", ImageOps.invert),
        ("AutoContrast", ImageOps.autocontrast),
        ("SolarizeIncreasing", lambda image: ImageOps.solarize(image, 256 - int(0.5 * 256))),
        ("PosterizeIncreasing", lambda image: ImageOps.posterize(image, 4 - int(0.5 * 4))),
    ],
)
def test_pixel_ops_match_pil(name, reference):
    clip = random_clip(frames=2, seed=5) // 2 + 40  # not full range: autocontrast has work to do
    out = randaugment.OPS[name](clip, 0.5)
    expected = from_pil([reference(image) for image in pil_frames(clip)])
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", sorted(randaugment.OPS))
def test_every_op_treats_frames_alike(name):
    base = random_clip(frames=1, seed=2) // 2 + 40  # not full range: autocontrast has work to do
    clip = base.repeat(3, 1, 1, 1)  # identical frames stay identical: one op, one parameter set
    out = randaugment.OPS[name](clip, 0.9)
    assert out.shape == clip.shape and out.dtype == torch.uint8
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    assert not torch.equal(out, clip)


def test_rand_augment_is_seeded_and_keeps_shape():
    clip = random_clip(seed=3)
    first = randaugment.rand_augment(clip, rng(4), num_ops=4, magnitude=7)
    again = randaugment.rand_augment(clip, rng(4), num_ops=4, magnitude=7)
    assert torch.equal(first, again) and first.shape == clip.shape and first.dtype == torch.uint8
    assert torch.equal(randaugment.rand_augment(clip, rng(4), num_ops=0, magnitude=7), clip)


# ------------------------------------------------------------------ mixup


def test_label_smoothing_values():
    targets = smooth_one_hot(torch.tensor([2, 0]), num_classes=4, smoothing=0.1)
    assert targets[0].tolist() == pytest.approx([0.025, 0.025, 0.925, 0.025])
    assert torch.allclose(targets.sum(1), torch.ones(2))


def test_mixup_blends_batch_with_its_reverse():
    video = torch.stack([torch.zeros(3, 2, 8, 8), torch.ones(3, 2, 8, 8)])  # (B, C, T, H, W)
    mix = Mixup(num_classes=2, mixup_alpha=0.8, cutmix_alpha=0.0, label_smoothing=0.0)
    out, targets = mix(video, torch.tensor([0, 1]), rng(0))
    lam = targets[0, 0].item()
    assert torch.allclose(out[0], torch.full_like(out[0], 1 - lam))
    assert torch.allclose(targets.sum(1), torch.ones(2)) and 0 < lam < 1


def test_cutmix_box_area_sets_the_target_weight():
    video = torch.stack([torch.zeros(3, 2, 16, 16), torch.ones(3, 2, 16, 16)])
    mix = Mixup(num_classes=2, mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0)
    for seed in range(10):
        out, targets = mix(video, torch.tensor([0, 1]), rng(seed))
        pasted = out[0].mean().item()  # fraction of sample 0 covered by sample 1
        assert targets[0, 1].item() == pytest.approx(pasted, abs=1e-6)
        assert torch.equal(out[0, :, 0], out[0, :, 1])  # same box on every frame


def test_mixup_off_returns_smoothed_targets_only():
    video = torch.rand(2, 3, 2, 8, 8)
    out, targets = Mixup(num_classes=3, mixup_alpha=0, cutmix_alpha=0, label_smoothing=0.1)(
        video, torch.tensor([1, 2]), rng(0)
    )
    assert torch.equal(out, video) and targets[0, 1].item() == pytest.approx(0.9 + 0.1 / 3)
    assert math.isclose(targets.sum().item(), 2.0, rel_tol=1e-6)
