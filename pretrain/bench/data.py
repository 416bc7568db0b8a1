"""`tubelet bench data`: clips/s of the streaming pipeline against its floor and a baseline.

All runs read the same videos with the same windows (same seeds), VideoMAE-B pretraining
settings: 16 frames at stride 4, 224 px, tube masks 0.9, batches of 8 clips.

- pipeline: `build_pretrain_loader` end to end (shards → decode → crop → normalize → masks →
  batch), at num_sample 1 and 4;
- floor: the same stream where the per-video work is only decoding the window's frames (no
  colour conversion, no crop, no copy);
- baseline: VideoMAE-style per-file loading, decord `VideoReader(path).get_batch(window)` from
  files on disk, then the same crop / flip / normalize / masks, in the same DataLoader setup;
- multi-view: T × S test views of a video from one decode vs decoding every view on its own.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pretrain.config import RunConfig, load_config
from pretrain.data import sampling, stages, transforms
from pretrain.data.batching import collate
from pretrain.data.clips import ClipSettings, MaskSettings, eval_views, video_shape
from pretrain.data.decode import count_decoded_frames, decode_frames
from pretrain.data.pretrain_stream import build_pretrain_loader, clip_settings, mask_settings
from pretrain.data.selection import Selection
from pretrain.masking import tube_mask

BATCH = 8


@dataclass
class DataBenchResult:
    shards: str
    workers: int
    clips: int
    clips_per_s: float
    floor_clips_per_s: float
    baseline_clips_per_s: float
    clips_per_s_num_sample4: float
    clips_per_s_uint8: float
    """The pipeline shipping uint8 (`data.normalize_on_device=true`): no float work on the host."""
    baseline_clips_per_s_num_sample4: float
    multiview_once_videos_per_s: float
    multiview_per_view_videos_per_s: float
    views: int

    @property
    def pipeline_over_floor(self) -> float:
        """Time per clip of the pipeline / of the floor (target ≤ 1.25)."""
        return self.floor_clips_per_s / self.clips_per_s

    @property
    def uint8_over_floor(self) -> float:
        return self.floor_clips_per_s / self.clips_per_s_uint8

    @property
    def speedup_vs_baseline(self) -> float:
        return self.clips_per_s / self.baseline_clips_per_s

    @property
    def repeated_sampling_speedup(self) -> float:
        return self.clips_per_s_num_sample4 / self.clips_per_s

    @property
    def multiview_speedup(self) -> float:
        return self.multiview_once_videos_per_s / self.multiview_per_view_videos_per_s

    def as_dict(self) -> dict:
        ratios = ("pipeline_over_floor", "uint8_over_floor", "speedup_vs_baseline", "repeated_sampling_speedup", "multiview_speedup")
        return {**asdict(self), **{name: round(getattr(self, name), 3) for name in ratios},
                "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)}


def bench_config(shards: str, workers: int, num_sample: int, clips: int, uint8: bool = False) -> RunConfig:
    return load_config(None, [f"data.normalize_on_device={str(uint8).lower()}",
        f"data.shards={shards}", "data.split=all", f"data.num_workers={workers}", f"data.batch_size={BATCH}",
        "data.stride=4", f"data.num_sample={num_sample}", "data.shuffle_buffer=8", f"data.epoch_size={clips * 4}",
        "model.size=b", "model.img_size=224", "model.num_frames=16", "mask.ratio=0.9"])


def clips_per_second(batches: Iterable[dict], clips: int, warmup: int) -> float:
    """Clips/s over `clips` clips after `warmup` batches (worker start-up, buffer fill)."""
    iterator = iter(batches)
    for _ in range(warmup):
        next(iterator)
    done, start = 0, time.perf_counter()
    while done < clips:
        batch = next(iterator)
        done += len(batch["key"])
    return done / (time.perf_counter() - start)


def decode_only(sample: dict, rng: np.random.Generator, settings: ClipSettings) -> list[dict]:
    """The floor's per-video work: decode the window (same draw as the pipeline), nothing else."""
    indices = sampling.random_clip(video_shape(sample)[0], settings.num_frames, settings.stride, rng)
    count_decoded_frames(sample["video"], indices, settings.decode_threads)
    return [{"video": torch.zeros(0), "label": -1, "key": sample["key"]}]


class DecordClips(Dataset):
    """VideoMAE-style loading: open the file with decord, `get_batch` the window, then the same
    multi-scale crop, flip, normalize and tube mask as the pipeline."""

    def __init__(self, files: list[Path], settings: ClipSettings, masks: MaskSettings, num_sample: int) -> None:
        self.files, self.settings, self.masks, self.num_sample = files, settings, masks, num_sample

    def __len__(self) -> int:
        return len(self.files) * 1000

    def __getitem__(self, index: int) -> list[dict]:
        import decord

        rng = stages.seeded_rng(index)
        path = self.files[index % len(self.files)]
        reader = decord.VideoReader(str(path), num_threads=self.settings.decode_threads, ctx=decord.cpu(0))
        indices = sampling.random_clip(len(reader), self.settings.num_frames, self.settings.stride, rng)
        frames = transforms.frames_to_tensor(reader.get_batch(list(indices)).asnumpy())  # (T, 3, H, W)
        height, width = frames.shape[-2:]
        clips = []
        for _ in range(self.num_sample):
            box = transforms.multi_scale_crop_box(height, width, self.settings.size, rng)
            clip = transforms.crop_resize(frames, box, self.settings.size)
            clip = transforms.hflip(clip) if rng.random() < 0.5 else clip
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            clips.append({"video": transforms.to_model_layout(clip),
                          "mask": tube_mask(self.masks.grid, self.masks.ratio, generator),
                          "label": -1, "key": path.name})
        return clips


def _flat_collate(items: list[list[dict]]) -> dict:
    return collate([clip for clips in items for clip in clips])  # normalized per batch, like the pipeline


def baseline_loader(files: list[Path], config: RunConfig) -> DataLoader:
    dataset = DecordClips(files, clip_settings(config), mask_settings(config), config.data.num_sample)
    return DataLoader(dataset, batch_size=BATCH // config.data.num_sample, shuffle=True,
                      num_workers=config.data.num_workers, collate_fn=_flat_collate,
                      generator=torch.Generator().manual_seed(0))


def read_samples(shards: str, limit: int) -> list[dict]:
    """The first `limit` samples of the shards, parsed (key, meta, video bytes)."""
    from pretrain.data.shards import read_manifest

    manifest = read_manifest(shards)
    counters = stages.Counters()
    samples = []
    for shard in manifest.shards:
        raw = stages.read_shard(f"{manifest.location}/{shard.name}", counters)
        samples.extend(stages.select(raw, Selection(None).accepts, counters))
        if len(samples) >= limit:
            break
    return samples[:limit]


def write_files(samples: list[dict], directory: Path) -> list[Path]:
    paths = []
    for sample in samples:
        path = directory / f"{sample['key']}.{sample['meta'].get('ext', 'mp4')}"
        path.write_bytes(sample["video"])
        paths.append(path)
    return paths


def multiview_rates(samples: list[dict], settings: ClipSettings, num_clips: int, num_crops: int) -> tuple[float, float]:
    """Videos/s of decode-once multi-view and of decoding every view separately."""
    start = time.perf_counter()
    for sample in samples:
        eval_views(sample, settings, num_clips, num_crops)
    once = len(samples) / (time.perf_counter() - start)
    start = time.perf_counter()
    for sample in samples:
        num_frames, width, height = video_shape(sample)
        size = transforms.conversion_size(width, height, settings.size)
        for window in sampling.uniform_clips(num_frames, settings.num_frames, settings.stride, num_clips):
            for crop in range(num_crops):
                frames = transforms.frames_to_tensor(decode_frames(sample["video"], window, size=size))
                frames = transforms.resize_short_side(frames, settings.size)
                box = transforms.spatial_view_boxes(*frames.shape[-2:], settings.size, num_crops)[crop]
                transforms.to_model_layout(transforms.crop_resize(frames, box, settings.size))  # uint8, as eval_views
    return once, len(samples) / (time.perf_counter() - start)


def bench_data(shards: str, workers: int = 0, clips: int = 64, multiview_videos: int = 4) -> DataBenchResult:
    """Run every measurement on the same shards and return the figures."""
    torch.set_num_threads(1)  # one core per loader process, as in training
    warmup = max(workers, 1)
    rates = {}
    for num_sample in (1, 4):
        config = bench_config(shards, workers, num_sample, clips)
        rates[f"pipeline{num_sample}"] = clips_per_second(build_pretrain_loader(config, 0, 1), clips, warmup)
    config = bench_config(shards, workers, 1, clips, uint8=True)
    rates["uint8"] = clips_per_second(build_pretrain_loader(config, 0, 1), clips, warmup)
    floor = functools.partial(decode_only, settings=clip_settings(config))  # uint8 config: no batch work
    rates["floor"] = clips_per_second(build_pretrain_loader(config, 0, 1, maker=floor), clips, warmup)
    config = bench_config(shards, workers, 1, clips)
    samples = read_samples(shards, limit=max(multiview_videos, 8))
    with tempfile.TemporaryDirectory(prefix="tubelet-bench-") as directory:
        files = write_files(samples, Path(directory))
        for num_sample in (1, 4):
            loader = baseline_loader(files, bench_config(shards, workers, num_sample, clips))
            rates[f"baseline{num_sample}"] = clips_per_second(loader, clips, warmup)
    once, per_view = multiview_rates(samples[:multiview_videos], clip_settings(config),
                                     config.data.test_clips, config.data.test_crops)
    return DataBenchResult(
        shards=str(shards), workers=workers, clips=clips, clips_per_s=rates["pipeline1"],
        floor_clips_per_s=rates["floor"], baseline_clips_per_s=rates["baseline1"],
        clips_per_s_num_sample4=rates["pipeline4"], clips_per_s_uint8=rates["uint8"], baseline_clips_per_s_num_sample4=rates["baseline4"],
        multiview_once_videos_per_s=once, multiview_per_view_videos_per_s=per_view,
        views=config.data.test_clips * config.data.test_crops)
