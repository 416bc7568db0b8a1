"""`tubelet bench data`: clips/s of the streaming pipeline against its floor and a baseline.

All runs read the same videos with the same windows (same seeds), VideoMAE-B pretraining
settings: 16 frames at stride 4, 224 px, tube masks 0.9, batches of 8 clips.

- pipeline: `build_pretrain_loader` end to end (shards → decode → crop → masks → batch) with the
  default settings (uint8 batches, normalized on the device), at num_sample 1 and 4, and with
  float batches normalized in the loader (`data.normalize_on_device=false`);
- floor: the same stream where the per-video work is only decoding the window's frames (no
  colour conversion, no crop, no copy); also decoding plus swscale's RGB conversion of the
  whole frames (what a decoder library hands back), for reference;
- baseline: VideoMAE-style per-file loading, decord `VideoReader(path).get_batch(window)` from
  files on disk, then the same crop / flip / masks and the same normalization setting, in the
  same DataLoader setup;
- multi-view: T × S test views of a video from one decode vs every view decoding its own window,
  and vs VideoMAE's test loader (each view decodes the whole video at the stride with decord,
  resizes it, and keeps its window and crop).
"""

from __future__ import annotations

import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from pretrain.config import RunConfig, load_config
from pretrain.data.augment import sampling, transforms
from pretrain.data.augment.clips import ClipSettings, MaskSettings, eval_views, video_shape
from pretrain.data.streams import pipeline_stages
from pretrain.data.streams.allocator import keep_large_buffers
from pretrain.data.streams.batching import collate
from pretrain.data.streams.pretrain_stream import build_pretrain_loader, clip_settings, mask_settings
from pretrain.data.streams.selection import Selection
from pretrain.data.video import crop
from pretrain.data.video.decode import count_decoded_frames, decode_frames, decode_window
from pretrain.masking import tube_mask

BATCH = 8
# measurement name -> DataBenchResult field
FIELD_OF = {
    "pipeline1": "clips_per_s",
    "float": "clips_per_s_float",
    "floor": "floor_clips_per_s",
    "decode_rgb": "decode_rgb_clips_per_s",
    "baseline1": "baseline_clips_per_s",
    "pipeline4": "clips_per_s_num_sample4",
    "baseline4": "baseline_clips_per_s_num_sample4",
    "once": "multiview_once_videos_per_s",
    "per_view": "multiview_per_view_videos_per_s",
    "videomae": "multiview_videomae_videos_per_s",
}
TURN_CLIPS = 3 * BATCH
"""Clips a stream runs per turn when streams take turns: short enough that every stream sees
the same machine conditions, long enough that each runs with its own data in the caches."""
# name: (numerator, denominator). *_over_floor is time per clip relative to the floor.
RATIOS = {
    "pipeline_over_floor": ("floor_clips_per_s", "clips_per_s"),
    "float_over_floor": ("floor_clips_per_s", "clips_per_s_float"),
    "decode_rgb_over_floor": ("floor_clips_per_s", "decode_rgb_clips_per_s"),
    "speedup_vs_baseline": ("clips_per_s", "baseline_clips_per_s"),
    "speedup_vs_baseline_num_sample4": ("clips_per_s_num_sample4", "baseline_clips_per_s_num_sample4"),
    "repeated_sampling_speedup": ("clips_per_s_num_sample4", "clips_per_s"),
    "multiview_speedup": ("multiview_once_videos_per_s", "multiview_per_view_videos_per_s"),
    "multiview_speedup_vs_videomae": ("multiview_once_videos_per_s", "multiview_videomae_videos_per_s"),
}


@dataclass
class DataBenchResult:
    shards: str
    corpus: str
    workers: int
    clips: int
    rounds: int
    clips_per_s: float
    """The default pipeline: uint8 batches, normalized on the device."""
    clips_per_s_float: float
    """Float batches normalized in the loader (`data.normalize_on_device=false`)."""
    floor_clips_per_s: float
    decode_rgb_clips_per_s: float
    """Decoding plus swscale RGB conversion of the window's whole frames, nothing else."""
    baseline_clips_per_s: float
    clips_per_s_num_sample4: float
    baseline_clips_per_s_num_sample4: float
    multiview_once_videos_per_s: float
    multiview_per_view_videos_per_s: float
    multiview_videomae_videos_per_s: float
    views: int
    per_round: dict[str, list[float]] = field(default_factory=dict)
    """Every round's rate of every field above, for the ratios."""

    def ratio(self, name: str) -> float:
        """Median over rounds of the ratio within each round (both measured under the same
        machine conditions); from the reported rates when rounds were not kept."""
        numerator, denominator = RATIOS[name]
        if numerator in self.per_round and denominator in self.per_round:
            pairs = zip(self.per_round[numerator], self.per_round[denominator])
            return statistics.median(a / b for a, b in pairs)
        return getattr(self, numerator) / getattr(self, denominator)

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            **{name: round(self.ratio(name), 3) for name in RATIOS},
            "cpus": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 2),
        }


def bench_config(
    shards: str, workers: int, num_sample: int, uint8: bool = True, decode_device: str = "cpu"
) -> RunConfig:
    """VideoMAE-B pretraining data settings over `shards` (one endless epoch)."""
    return load_config(
        None,
        [
            f"data.normalize_on_device={str(uint8).lower()}",
            f"data.shards={shards}",
            "data.split=all",
            f"data.num_workers={workers}",
            f"data.batch_size={BATCH}",
            "data.stride=4",
            f"data.num_sample={num_sample}",
            "data.shuffle_buffer=8",
            "data.epoch_size=1000000",
            "model.size=b",
            "model.img_size=224",
            "model.num_frames=16",
            "mask.ratio=0.9",
            f"data.decode_device={decode_device}",
        ],
    )


def stream_clip_rates(iterators: dict[str, Iterator[dict]], clips: int, workers: int) -> dict[str, float]:
    """Clips/s of every stream over its next `clips` clips. In-process (workers=0): CPU time,
    the streams taking turns of a few batches, which puts all of them under the same machine
    conditions (on a shared machine speed drifts by tens of percent within seconds). With
    worker processes: wall time, one stream after the other, each after draining what its
    workers prefetched while the others ran."""
    if workers == 0:
        return interleaved_clip_rates(iterators, clips, 1, time.process_time)
    return {
        name: interleaved_clip_rates({name: iterator}, clips, 2 * workers, time.perf_counter)[name]
        for name, iterator in iterators.items()
    }


def interleaved_clip_rates(
    iterators: dict[str, Iterator[dict]], clips: int, drain: int, clock: Callable[[], float]
) -> dict[str, float]:
    """Clips/s of every stream over its next `clips` clips, timed in turns of `TURN_CLIPS`,
    after `drain` untimed batches each (start-up, or batches prefetched meanwhile)."""
    for iterator in iterators.values():
        for _ in range(drain):
            next(iterator)
    done = {name: 0 for name in iterators}
    spent = {name: 0.0 for name in iterators}
    while any(count < clips for count in done.values()):
        for name, iterator in iterators.items():
            turn_end = min(done[name] + TURN_CLIPS, clips)
            start = clock()
            while done[name] < turn_end:
                done[name] += len(next(iterator)["key"])
            spent[name] += clock() - start
    return {name: done[name] / spent[name] for name in iterators}


def rates_per_round(measurements: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Run the measurements interleaved, `rounds` times (a measurement may return several named
    rates); every rate of every round, in order."""
    rates: dict[str, list[float]] = {}
    names = list(measurements)
    for round_index in range(rounds):
        # Each round starts one measurement later: none always runs right after the same one.
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            result = measurements[name]()
            for key, rate in result.items() if isinstance(result, dict) else [(name, result)]:
                rates.setdefault(key, []).append(rate)
    return rates


def decode_only(
    sample: dict, rng: np.random.Generator, settings: ClipSettings, rgb: bool = False
) -> list[dict]:
    """The floor's per-video work: decode the window (same draw as the pipeline), nothing else;
    with `rgb`, also convert the whole frames to RGB as a decoder library would hand them back."""
    indices = sampling.random_clip(video_shape(sample)[0], settings.num_frames, settings.stride, rng)
    if rgb:
        decode_frames(sample["video"], indices, threads=settings.decode_threads)
    else:
        count_decoded_frames(sample["video"], indices, settings.decode_threads)
    return [{"video": torch.zeros(0), "label": -1, "key": sample["key"]}]


class DecordClips(Dataset):
    """VideoMAE-style loading: open the file with decord, `get_batch` the window, then the same
    multi-scale crop, flip, normalize and tube mask as the pipeline."""

    def __init__(
        self, files: list[Path], settings: ClipSettings, masks: MaskSettings, num_sample: int
    ) -> None:
        self.files, self.settings, self.masks, self.num_sample = files, settings, masks, num_sample

    def __len__(self) -> int:
        return len(self.files) * 1000

    def __getitem__(self, index: int) -> list[dict]:
        import decord

        rng = pipeline_stages.seeded_rng(index)
        path = self.files[index % len(self.files)]
        reader = decord.VideoReader(str(path), num_threads=self.settings.decode_threads, ctx=decord.cpu(0))
        indices = sampling.random_clip(len(reader), self.settings.num_frames, self.settings.stride, rng)
        frames = crop.frames_to_tensor(reader.get_batch(list(indices)).asnumpy())  # (T, 3, H, W)
        height, width = frames.shape[-2:]
        clips = []
        for _ in range(self.num_sample):
            box = transforms.multi_scale_crop_box(height, width, self.settings.size, rng)
            clip = crop.crop_resize(frames, box, self.settings.size)
            clip = crop.hflip(clip) if rng.random() < 0.5 else clip
            generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
            clips.append(
                {
                    "video": transforms.to_model_layout(clip),
                    "mask": tube_mask(self.masks.grid, self.masks.ratio, generator),
                    "label": -1,
                    "key": path.name,
                }
            )
        return clips


def _flat_collate(items: list[list[dict]], normalize: bool) -> dict:
    return collate([clip for clips in items for clip in clips], normalize)  # as the pipeline batches


def baseline_loader(files: list[Path], config: RunConfig) -> DataLoader:
    dataset = DecordClips(files, clip_settings(config), mask_settings(config), config.data.num_sample)
    return DataLoader(
        dataset,
        batch_size=BATCH // config.data.num_sample,
        shuffle=True,
        num_workers=config.data.num_workers,
        collate_fn=functools.partial(_flat_collate, normalize=not config.data.normalize_on_device),
        generator=torch.Generator().manual_seed(0),
    )


def read_samples(shards: str, limit: int) -> list[dict]:
    """The first `limit` samples of the shards, parsed (key, meta, video bytes)."""
    from pretrain.data.shards import read_manifest

    manifest = read_manifest(shards)
    counters = pipeline_stages.Counters()
    samples = []
    for shard in manifest.shards:
        raw = pipeline_stages.read_shard(f"{manifest.location}/{shard.name}", counters)
        samples.extend(pipeline_stages.select(raw, Selection(None).accepts, counters))
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


def decode_once(samples: list[dict], settings: ClipSettings, num_clips: int, num_crops: int) -> float:
    """Videos per CPU-second of multi-view test views cut from one decode per video."""
    start = time.process_time()
    for sample in samples:
        eval_views(sample, settings, num_clips, num_crops)
    return len(samples) / (time.process_time() - start)


def decode_per_view(samples: list[dict], settings: ClipSettings, num_clips: int, num_crops: int) -> float:
    """Videos per CPU-second when every view decodes its own window and renders its own crop
    (same resize, crop and output as `eval_views`)."""
    start = time.process_time()
    for sample in samples:
        for window in sampling.uniform_clips(
            video_shape(sample)[0], settings.num_frames, settings.stride, num_clips
        ):
            for crop_index in range(num_crops):
                frames = decode_window(sample["video"], window)
                frames.set_working_size(transforms.short_side_size(*frames.native, settings.size))
                box = transforms.spatial_view_boxes(frames.height, frames.width, settings.size, num_crops)[
                    crop_index
                ]
                frames.render(box, (settings.size, settings.size)).permute(3, 0, 1, 2)  # (C, T, S, S)
    return len(samples) / (time.process_time() - start)


def videomae_per_view(files: list[Path], settings: ClipSettings, num_clips: int, num_crops: int) -> float:
    """Videos per CPU-second with VideoMAE's test loader: every view is its own dataset item that
    decodes the whole video at the stride (decord `get_batch`), resizes it to short side `size`
    and keeps its own window and crop."""
    import decord

    start = time.process_time()
    for path in files:
        for view in range(num_clips * num_crops):
            reader = decord.VideoReader(str(path), num_threads=settings.decode_threads, ctx=decord.cpu(0))
            frames = crop.frames_to_tensor(
                reader.get_batch(list(range(0, len(reader), settings.stride))).asnumpy()
            )
            width, height = transforms.short_side_size(frames.shape[-1], frames.shape[-2], settings.size)
            frames = torch.nn.functional.interpolate(
                frames, size=(height, width), mode="bilinear", antialias=True
            )
            chunk, split = divmod(view, num_crops)
            tick = max(len(frames) - settings.num_frames, 0) / max(num_clips - 1, 1)
            first = int(chunk * tick)
            box = transforms.spatial_view_boxes(height, width, settings.size, num_crops)[split]
            clip = crop.crop_resize(frames[first : first + settings.num_frames], box, settings.size)
            transforms.to_model_layout(clip)  # (C, T, S, S)
    return len(files) / (time.process_time() - start)


def describe_corpus(samples: list[dict]) -> str:
    """Codec, size, bitrate and length of the benchmark videos, from the shards' json."""
    meta = samples[0]["meta"]
    megabits = (
        sum(len(s["video"]) * 8 / max(s["meta"].get("duration", 1), 1e-3) for s in samples)
        / len(samples)
        / 1e6
    )
    return (
        f"{meta.get('codec', '?')} {meta.get('width')}x{meta.get('height')} .{meta.get('ext', '?')}, "
        f"{megabits:.2f} Mbit/s, {meta.get('num_frames')} frames at {meta.get('fps')} fps "
        f"(first {len(samples)} videos)"
    )


def _stream(loader) -> Iterator[dict]:
    """An endless iterator over a loader's epochs."""
    while True:
        yield from loader


def bench_data(
    shards: str, workers: int = 0, clips: int = 24, multiview_videos: int = 3, rounds: int = 3
) -> DataBenchResult:
    """Run every measurement on the same shards, interleaved for `rounds`."""
    torch.set_num_threads(1)  # one core per loader process, as in training
    keep_large_buffers()  # as in a loader worker process (in-process runs stand for one)
    samples = read_samples(shards, limit=max(multiview_videos, 8))
    config, float_config = bench_config(shards, workers, 1), bench_config(shards, workers, 1, uint8=False)
    settings, views = clip_settings(config), (config.data.test_clips, config.data.test_crops)
    with tempfile.TemporaryDirectory(prefix="tubelet-bench-") as directory:
        files = write_files(samples, Path(directory))
        streams = {
            "pipeline1": build_pretrain_loader(config, 0, 1),
            "pipeline4": build_pretrain_loader(bench_config(shards, workers, 4), 0, 1),
            "float": build_pretrain_loader(float_config, 0, 1),
            "floor": build_pretrain_loader(
                config, 0, 1, maker=functools.partial(decode_only, settings=settings)
            ),
            "decode_rgb": build_pretrain_loader(
                config, 0, 1, maker=functools.partial(decode_only, settings=settings, rgb=True)
            ),
            "baseline1": baseline_loader(files, config),
            "baseline4": baseline_loader(files, bench_config(shards, workers, 4)),
        }
        iterators = {name: _stream(loader) for name, loader in streams.items()}
        measurements = {"streams": functools.partial(stream_clip_rates, iterators, clips, workers)}
        measurements["once"] = functools.partial(decode_once, samples[:multiview_videos], settings, *views)
        measurements["per_view"] = functools.partial(
            decode_per_view, samples[:multiview_videos], settings, *views
        )
        measurements["videomae"] = functools.partial(
            videomae_per_view, files[:multiview_videos], settings, *views
        )
        per_round = rates_per_round(measurements, rounds)
    # Reported rates: each one's best round, the one least disturbed by other work on a shared
    # machine; ratios: the median of per-round ratios (`DataBenchResult.ratio`).
    rates = {name: max(values) for name, values in per_round.items()}
    return DataBenchResult(
        shards=str(shards),
        corpus=describe_corpus(samples),
        workers=workers,
        clips=clips,
        rounds=rounds,
        clips_per_s=rates["pipeline1"],
        clips_per_s_float=rates["float"],
        floor_clips_per_s=rates["floor"],
        decode_rgb_clips_per_s=rates["decode_rgb"],
        baseline_clips_per_s=rates["baseline1"],
        clips_per_s_num_sample4=rates["pipeline4"],
        baseline_clips_per_s_num_sample4=rates["baseline4"],
        multiview_once_videos_per_s=rates["once"],
        multiview_per_view_videos_per_s=rates["per_view"],
        multiview_videomae_videos_per_s=rates["videomae"],
        views=views[0] * views[1],
        per_round={FIELD_OF[name]: values for name, values in per_round.items()},
    )
