"""The pretraining loader: endless WebDataset stream → masked clips, per rank.

    loader = build_pretrain_loader(config, rank, world_size)
    for batch in loader:  # video (B, C, T, H, W), mask (B, N), [decoder_mask (B, N)], label, key
        # (with data.ship_yuv420, video may be YUV 4:2:0 frames (B, T, H*3/2, W): `model_video`)
        ...

An epoch's length is `epoch.training_epoch` (the schedule follows the same rule). See
`train_stream` for the stages and `loader` for resumption.
"""

from __future__ import annotations

import functools

from pretrain.config import RunConfig
from pretrain.data.augment.clips import ClipSettings, MaskSettings, pretrain_clips
from pretrain.data.shards import Manifest, read_manifest
from pretrain.data.streams.batching import ClipMaker
from pretrain.data.streams.epoch import training_epoch
from pretrain.data.streams.loader import StreamLoader
from pretrain.data.streams.selection import stored_frame_step
from pretrain.data.streams.train_stream import train_loader
from pretrain.data.video.gpu_decode import require_gpu_decoding


def clip_settings(config: RunConfig, manifest: Manifest | None = None) -> ClipSettings:
    """Frames, stride, size and decode threads from the run config; the stride in the stored
    frames of `manifest`'s shards (whole-rate shards, or none given: `data.stride`)."""
    return ClipSettings(
        num_frames=config.model.num_frames,
        stride=stored_frame_step(config.data.stride, manifest) if manifest else config.data.stride,
        size=config.model.img_size,
        decode_threads=config.data.decode_threads,
        decode_device=config.data.decode_device,
    )


def mask_settings(config: RunConfig) -> MaskSettings:
    return MaskSettings(
        grid=config.model.grid,
        ratio=config.mask.ratio,
        decoder_ratio=config.mask.decoder_ratio,
        kind=config.mask.kind,
    )


def build_pretrain_loader(
    config: RunConfig, rank: int, world_size: int, maker: ClipMaker | None = None
) -> StreamLoader:
    """The pretraining stream of `rank` out of `world_size` (`maker` replaces the per-video work,
    e.g. decode-only for the benchmark's floor)."""
    data = config.data
    if data.decode_device == "cuda":
        require_gpu_decoding()
    manifest = read_manifest(data.shards)
    epoch = training_epoch(config, manifest, world_size)
    maker = maker or functools.partial(
        pretrain_clips,
        settings=clip_settings(config, manifest),
        masks=mask_settings(config),
        num_sample=data.num_sample,
    )
    return train_loader(
        config, epoch, maker, rank, world_size, yuv420=data.normalize_on_device and data.ship_yuv420
    )
