"""One decoded video → training clips or test views (the per-sample work of every stream).

Each function decodes once (only the frames it needs, kept in the decoder's YUV) and renders all
its clips from that decode (`frames.DecodedFrames.render`): `num_sample` clips for repeated
sampling (VideoMAE V2: same frames, independent crops, flips and masks), or T × S views for
multi-view testing. Clips are dicts with uint8 `video` `(C, T, H, W)` (or `(V, C, T, H, W)`),
`label`, `key`, and `mask` / `decoder_mask` for pretraining. Pretraining clips and test views are
`(T, H, W, C)` in memory (a permuted view: no transpose pass); pretraining clips cut from YUV
planes stay pending (`frames.PendingView`) until the batch renders them into its own memory.
Normalization to float happens once per batch (`batching.collate`), or on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pretrain.data.augment import sampling, transforms
from pretrain.data.augment.randaugment import rand_augment
from pretrain.data.stage_clock import CLOCK
from pretrain.data.video.decode import decode_window, probe
from pretrain.data.video.frames import DecodedFrames, view_of
from pretrain.data.video.gpu_decode import EncodedClip
from pretrain.masking import ENCODER_MASKS, running_cell_mask

Clip = dict[str, Any]


@dataclass(frozen=True)
class ClipSettings:
    num_frames: int
    stride: int
    size: int
    """Output height and width."""
    decode_threads: int = 1
    decode_device: str = "cpu"
    """cuda: pretraining clips are drawn here and decoded on the GPU (`gpu_decode.EncodedClip`)."""


@dataclass(frozen=True)
class MaskSettings:
    grid: tuple[int, int, int]
    ratio: float
    decoder_ratio: float = 0.0
    kind: str = "tube"
    """`mask.kind`: tube or random."""


@dataclass(frozen=True)
class TrainAugment:
    """Fine-tuning augmentation (VideoMAE's UCF101/HMDB51 recipe by default)."""

    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    randaug_ops: int = 4
    randaug_magnitude: float = 7.0
    random_erasing: float = 0.25
    flip: bool = True


def video_shape(sample: dict) -> tuple[int, int, int]:
    """(frames, width, height) from the sample's json, probing the bytes if a field is missing."""
    meta = sample["meta"]
    if all(meta.get(k) for k in ("num_frames", "width", "height")):
        return int(meta["num_frames"]), int(meta["width"]), int(meta["height"])
    info = probe(sample["video"])
    return info.num_frames, info.width, info.height


def _masks(settings: MaskSettings, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    with CLOCK.stage("masks"):
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        out = {"mask": ENCODER_MASKS[settings.kind](settings.grid, settings.ratio, generator)}  # (N,)
        if settings.decoder_ratio > 0:
            out["decoder_mask"] = running_cell_mask(settings.grid, settings.decoder_ratio, generator)  # (N,)
        return out


def _decode(sample: dict, indices: np.ndarray, short_side: int, threads: int) -> DecodedFrames:
    """The window's frames; crop boxes refer to the native size, or to short side `short_side`
    when that shrinks the video a lot (large sources are converted smaller first)."""
    frames = decode_window(sample["video"], indices, threads=threads)
    frames.set_working_size(transforms.conversion_size(*frames.native, short_side))
    return frames


def pretrain_clips(
    sample: dict,
    rng: np.random.Generator,
    settings: ClipSettings,
    masks: MaskSettings,
    num_sample: int = 1,
    flip: bool = True,
) -> list[Clip]:
    """VideoMAE pretraining: random window, multi-scale crop, flip, tube (+ decoder) masks. With
    `settings.decode_device` cuda the clips stay encoded (boxes on the native size), for the GPU."""
    num_frames, width, height = video_shape(sample)
    indices = sampling.random_clip(num_frames, settings.num_frames, settings.stride, rng)
    size = (settings.size, settings.size)
    frames = None
    if settings.decode_device == "cpu":
        # Large videos are converted where the smallest multi-scale crop is exactly the output size.
        short_side = math.ceil(settings.size / min(transforms.MULTI_SCALES))
        frames = _decode(sample, indices, short_side, settings.decode_threads)
        height, width = frames.height, frames.width
    clips = []
    for _ in range(num_sample):
        box = transforms.multi_scale_crop_box(height, width, settings.size, rng)
        flipped = flip and rng.random() < 0.5
        if frames is None:
            video = EncodedClip(sample["video"], tuple(int(i) for i in indices), box, flipped, size)
        else:
            video = view_of(frames, box, size, flipped)  # (C, T, S, S), maybe pending
        clips.append({"video": video, **_masks(masks, rng), **_identity(sample)})
    return clips


def finetune_clips(
    sample: dict, rng: np.random.Generator, settings: ClipSettings, augment: TrainAugment, num_sample: int = 1
) -> list[Clip]:
    """Fine-tuning: random window, random resized crop, flip, RandAugment, random erasing."""
    num_frames = video_shape(sample)[0]
    indices = sampling.random_clip(num_frames, settings.num_frames, settings.stride, rng)
    # Small crops are upscaled: keep up to twice the output size of detail.
    frames = _decode(sample, indices, 2 * settings.size, settings.decode_threads)
    clips = []
    for _ in range(num_sample):
        box = transforms.random_resized_crop_box(
            frames.height, frames.width, rng, augment.crop_scale, augment.crop_ratio
        )
        flipped = augment.flip and rng.random() < 0.5
        clip = frames.render(box, (settings.size, settings.size), flipped).permute(0, 3, 1, 2)  # (T, 3, S, S)
        if augment.randaug_ops > 0:
            clip = rand_augment(clip.contiguous(), rng, augment.randaug_ops, augment.randaug_magnitude)
        video = transforms.to_model_layout(clip)  # (C, T, S, S) uint8
        # Erased in pixel space: noise drawn as N(0, 1) after normalization, mapped back, clipped.
        video = transforms.random_erasing(video, rng, augment.random_erasing, normalized=False)
        clips.append({"video": video, **_identity(sample)})
    return clips


def eval_views(
    sample: dict, settings: ClipSettings, num_clips: int = 1, num_crops: int = 1, multi_view: bool = True
) -> list[Clip]:
    """Deterministic test views from one decode: `num_clips` uniform windows × `num_crops` crops
    along the long side of the frames resized to short side `size` (VideoMAE's test protocol).
    `video` is `(V, C, T, S, S)`, clip-major; `(C, T, S, S)` when not `multi_view` (one view)."""
    num_frames = video_shape(sample)[0]
    windows = sampling.uniform_clips(num_frames, settings.num_frames, settings.stride, num_clips)  # (K, T)
    union = np.unique(windows)
    frames = decode_window(sample["video"], union, threads=settings.decode_threads)
    frames.set_working_size(transforms.short_side_size(*frames.native, settings.size))
    # Every needed frame resized to short side `size` once; the views are crops of it.
    bank = frames.render((0, 0, frames.height, frames.width), (frames.height, frames.width))  # (U, H, W, 3)
    position = {int(index): row for row, index in enumerate(union)}
    boxes = transforms.spatial_view_boxes(frames.height, frames.width, settings.size, num_crops)
    size = settings.size
    views = np.empty((len(windows) * len(boxes), settings.num_frames, size, size, 3), dtype=np.uint8)
    source = bank.numpy()  # numpy copies strided rows with memcpy, several times faster than torch here
    for clip_index, window in enumerate(windows):
        for crop_index, (top, left, crop_h, crop_w) in enumerate(boxes):
            view = views[clip_index * len(boxes) + crop_index]  # (T, S, S, 3)
            for t, index in enumerate(window):
                view[t] = source[position[int(index)], top : top + crop_h, left : left + crop_w]
    if not multi_view and len(views) != 1:
        raise ValueError(f"single-view evaluation asked for {len(views)} views")
    video = torch.from_numpy(views).permute(0, 4, 1, 2, 3)  # (V, C, T, S, S), channels-last memory
    return [{"video": video if multi_view else video[0], **_identity(sample)}]


def _identity(sample: dict) -> dict:
    label = sample["meta"].get("label")
    return {"label": -1 if label is None else int(label), "key": sample["key"]}
