"""From selected samples to batches: decode into clips (skipping and counting failures), then
collate, carrying each worker's stream position for checkpointing.

Every batch has a private `_stream` entry, `StreamMark`, which the loader pops: which worker made
it and how far that worker has read, so a checkpoint can say exactly where to resume.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info

from pretrain.data.augment.transforms import normalize_video
from pretrain.data.stage_clock import CLOCK
from pretrain.data.streams.pipeline_stages import Counters, DataError, Sample, seeded_rng
from pretrain.data.video.decode import DecodeError
from pretrain.data.video.frames import PendingView
from pretrain.data.video.gpu_decode import EncodedBatch, EncodedClip

log = logging.getLogger(__name__)

ClipMaker = Callable[[Sample, np.random.Generator], list[dict]]
BatchHook = Callable[[dict, np.random.Generator], dict]


@dataclass(frozen=True)
class StartPoint:
    """Where a worker starts within an epoch: videos fully consumed, clips of the next video
    already delivered, batches delivered, and its skip counters so far."""

    videos: int = 0
    clips: int = 0
    batches: int = 0
    skipped_samples: int = 0
    skipped_shards: int = 0


@dataclass(frozen=True)
class StreamMark:
    worker: int
    position: StartPoint
    decoded_videos: int


def make_clips(
    samples: Iterable[Sample],
    maker: ClipMaker,
    seed_parts: tuple[int, ...],
    start: StartPoint,
    counters: Counters,
    num_videos: int | None,
) -> Iterator[tuple[dict, int, int]]:
    """Yield `(clip, video_index, clip_index)`. Videos before `start` are skipped undecoded; each
    video's randomness comes from its own index, so skipping does not change later clips.
    Raises DataError when `num_videos` distinct videos in a row failed to decode."""
    failed_in_a_row: set[str] = set()
    for index, sample in enumerate(samples):
        if index < start.videos:
            continue
        try:
            clips = maker(sample, seeded_rng(*seed_parts, index))
        except (DecodeError, ValueError, RuntimeError) as error:
            counters.note("sample", f"{sample['key']} in {sample['url']}: {error}")
            failed_in_a_row.add(sample["key"])
            if num_videos and len(failed_in_a_row) >= num_videos:
                raise DataError(
                    f"none of the {num_videos} selected videos decodes; last error: {error}"
                ) from error
            continue
        failed_in_a_row.clear()
        counters.decoded_videos += 1
        first = start.clips if index == start.videos else 0
        for clip_index in range(first, len(clips)):
            yield clips[clip_index], index, clip_index


def collate(clips: list[dict], normalize: bool = True, yuv420: bool = False) -> dict:
    """Stack clip dicts into the batch contract: uint8 videos stacked then normalized to float in
    one pass over the batch (unless shipping uint8), masks stacked, `label` long, `key` list.
    With `yuv420` (and not `normalize`), a batch of views cut from 4:2:0 video ships as YUV
    4:2:0 frames `(B, T, H*3/2, W)` (half of RGB's bytes; `transforms.yuv420_to_rgb` on the
    device). Inside a loader worker the tensors that leave the process are made in shared
    memory, so handing them to the main process copies nothing."""
    with CLOCK.stage("collate"):  # rendering pending views inside counts as crop_resize / convert
        return _collate(clips, normalize, yuv420)


def _collate(clips: list[dict], normalize: bool, yuv420: bool) -> dict:
    videos = [c["video"] for c in clips]
    if isinstance(videos[0], EncodedClip):  # data.decode_device=cuda: decoded by the training process
        video = EncodedBatch(videos)
    elif yuv420 and not normalize and all(isinstance(v, PendingView) and v.yuv420_shippable for v in videos):
        video = _render_yuv420(videos)  # (B, T, H*3/2, W)
    else:
        video = stack_videos(videos, shared=not normalize)  # (B, [V,] C, T, H, W) uint8
    if normalize and not isinstance(video, EncodedBatch):
        video = normalize_video(video, out=_new_tensor(video.shape, torch.float32, shared=True))
    batch: dict[str, Any] = {"video": video}
    for name in ("mask", "decoder_mask"):
        if name in clips[0]:
            batch[name] = torch.stack([c[name] for c in clips])  # (B, N)
    batch["label"] = torch.tensor([c["label"] for c in clips], dtype=torch.long)
    batch["key"] = [c["key"] for c in clips]
    return batch


def stack_videos(videos: list, shared: bool = False) -> torch.Tensor:
    """Stack `(..., C, T, H, W)` videos along a new batch axis keeping their memory order:
    clips laid out `(..., T, H, W, C)` (the renderer's output) stack as such and come back as a
    permuted view, without a transpose pass; pending views render straight into the batch."""
    if any(isinstance(v, PendingView) for v in videos):
        return _render_pending(videos, shared)
    channel = videos[0].dim() - 4
    memory = [v.movedim(channel, -1) for v in videos] if channel >= 0 else videos  # (..., T, H, W, C) views
    channels_last = channel >= 0 and all(m.is_contiguous() for m in memory)
    if not channels_last:
        memory = [v.contiguous() for v in videos]
    stacked = torch.stack(memory, out=_new_tensor((len(videos), *memory[0].shape), memory[0].dtype, shared))
    return stacked.movedim(-1, channel + 1) if channels_last else stacked  # (B, ..., C, T, H, W)


def _render_yuv420(videos: list[PendingView]) -> torch.Tensor:
    _, frames, height, width = videos[0].shape
    out = _new_tensor((len(videos), frames, height * 3 // 2, width), torch.uint8, shared=True)
    for slot, video in zip(out, videos):
        video.render_yuv420_into(slot)
    return out


def _render_pending(videos: list, shared: bool) -> torch.Tensor:
    channels, frames, height, width = videos[0].shape
    out = _new_tensor((len(videos), frames, height, width, channels), torch.uint8, shared)  # (B, T, H, W, C)
    for slot, video in zip(out, videos):
        if isinstance(video, PendingView):
            video.render_into(slot)
        else:
            slot.copy_(video.permute(1, 2, 3, 0))
    return out.permute(0, 4, 1, 2, 3)  # (B, C, T, H, W)


def _new_tensor(shape: tuple[int, ...], dtype: torch.dtype, shared: bool) -> torch.Tensor:
    """An empty tensor, in shared memory when `shared` and running in a loader worker (what the
    DataLoader's own collate does; otherwise the batch is copied into shared memory when sent)."""
    if not (shared and get_worker_info() is not None):
        return torch.empty(shape, dtype=dtype)
    return new_shared_tensor(shape, dtype)


def new_shared_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An empty tensor in shared memory (what leaves a loader worker without a copy)."""
    numel = math.prod(shape)
    storage = torch.UntypedStorage._new_shared(numel * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def batch_clips(
    clips: Iterable[tuple[dict, int, int]],
    batch_size: int,
    clips_per_video: int,
    worker: int,
    start: StartPoint,
    counters: Counters,
    normalize: bool = True,
    partial: bool = False,
    hook: BatchHook | None = None,
    seed_parts: tuple[int, ...] = (),
    yuv420: bool = False,
) -> Iterator[dict]:
    """Group clips into batches (a smaller last batch only if `partial`), each marked with the
    worker's position after it. `hook(batch, rng)` runs per batch (e.g. mixup)."""
    pending: list[tuple[dict, int, int]] = []
    batches = start.batches

    def emit() -> dict:
        nonlocal batches
        batch = collate([clip for clip, _, _ in pending], normalize, yuv420)
        _, video, clip = pending[-1]
        done = (video + 1, 0) if clip + 1 >= clips_per_video else (video, clip + 1)
        if hook is not None:
            batch = hook(batch, seeded_rng(*seed_parts, batches))
        batches += 1
        position = StartPoint(done[0], done[1], batches, counters.skipped_samples, counters.skipped_shards)
        batch["_stream"] = StreamMark(worker, position, counters.decoded_videos)
        pending.clear()
        return batch

    for item in clips:
        pending.append(item)
        if len(pending) == batch_size:
            yield emit()
    if pending and partial:
        yield emit()
