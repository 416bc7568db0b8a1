"""`tubelet bench encoding SRC`: each lever of the training encoding alone, then all together,
against today's recommended encoding (`--resize-short 320 --reencode`).

Every variant is a real `shards build` of the folder SRC (its own ReencodeOptions). Per variant:
clips per CPU-second of the pretraining pipeline (in-process, one core; VideoMAE-B clip, data.stride
4 in source frames) at data.num_sample 1 and 4, all variants timed in interleaved turns; storage in
bytes per hour of video; and the PSNR of the first test view (16 frames from frame 0, short side
224, centre crop) against the same view from shards of the original bytes: how much of what the
model sees the variant changes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pretrain.data.shards import BuildOptions, build_shards, read_manifest
from pretrain.data.shards.encode import TRAIN_GOP_FRAMES, ReencodeOptions, training_encoding

TODAY = ReencodeOptions(resize_short=320)
"""`--resize-short 320 --reencode`: H.264 crf 23 veryfast, a keyframe every 0.5 s, x264's B-frames."""
TRAIN = training_encoding(4, None, TODAY.crf, TODAY.preset)


def variants() -> dict[str, ReencodeOptions]:
    """Today's encoding, each lever alone on top of it, the training encoding with one lever
    changed (keyframe interval 4 and 16, B-frames, no fastdecode), and the training encoding."""
    alone = {
        "today (320, 0.5 s keyframes)": TODAY,
        "stride 4 alone": dataclasses.replace(TODAY, stride=4),
        "short side 256 alone": dataclasses.replace(TODAY, resize_short=256),
        f"keyframe every {TRAIN_GOP_FRAMES} frames alone": dataclasses.replace(
            TODAY, gop_frames=TRAIN_GOP_FRAMES
        ),
        "no B-frames alone": dataclasses.replace(TODAY, bframes=0),
        "tune fastdecode alone": dataclasses.replace(TODAY, tune="fastdecode"),
    }
    sweep = {f"training, keyframe every {g}": dataclasses.replace(TRAIN, gop_frames=g) for g in (4, 16)}
    return {
        **alone,
        **sweep,
        "training, x264's B-frames": dataclasses.replace(TRAIN, bframes=None),
        "training, no fastdecode": dataclasses.replace(TRAIN, tune=None),
        f"training encoding (keyframe every {TRAIN_GOP_FRAMES})": TRAIN,
    }


@dataclass(frozen=True)
class LeverBuild(BuildOptions):
    """BuildOptions whose re-encode is one measured variant."""

    lever: ReencodeOptions | None = None

    def reencode_options(self) -> ReencodeOptions | None:
        return self.lever

    def content_fields(self) -> dict:
        fields = super().content_fields()
        if self.lever is not None and self.lever.stride > 1:  # what loaders read
            fields["stored"] = {"stride": self.lever.stride, "short_side": self.lever.resize_short}
        return fields


@dataclass
class EncodingRow:
    name: str
    clips_per_cpu_s: dict[str, float]
    """num_sample -> clips per CPU-second."""
    gb_per_hour: float
    psnr_db: float


def build_variants(src: Path, workdir: Path) -> dict[str, str]:
    """Shards of every variant (and of the original bytes, "original") under `workdir`."""
    built = {"original": workdir / "original"}
    build_shards("folder", str(src), str(built["original"]), BuildOptions(shard_size_mb=512))
    for index, (name, options) in enumerate(variants().items()):
        built[name] = workdir / f"variant-{index:02d}"
        build_shards("folder", str(src), str(built[name]), LeverBuild(shard_size_mb=512, lever=options))
    return {name: str(path) for name, path in built.items()}


def gb_per_hour(shards: str) -> float:
    manifest = read_manifest(shards)
    seconds = manifest.totals.get("duration_s", 0)
    return manifest.totals["bytes"] / 1e9 / (seconds / 3600) if seconds else math.nan


def first_view_psnr(shards: str, reference: str, size: int = 224) -> float:
    """PSNR (dB) of the first 16-frame test view of every video against the reference shards'."""
    from pretrain.bench.data import read_samples
    from pretrain.config import load_config
    from pretrain.data.augment.clips import eval_views
    from pretrain.data.streams.pretrain_stream import clip_settings

    views = {}
    for name, location in (("variant", shards), ("reference", reference)):
        manifest = read_manifest(location)
        config = load_config(None, [f"data.shards={location}", "data.split=all", f"model.img_size={size}"])
        settings = clip_settings(config, manifest)
        samples = sorted(read_samples(location, limit=1000), key=lambda s: s["key"])
        # Two uniform clips: the first starts at frame 0 on every frame rate.
        views[name] = [eval_views(s, settings, 2, 1)[0]["video"][0].numpy() for s in samples]
    errors = [np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(views["variant"], views["reference"])]
    return float(10 * np.log10(255**2 / max(np.mean(errors), 1e-12)))


def measure(built: dict[str, str], clips: int, num_samples: tuple[int, ...] = (1, 4)) -> list[EncodingRow]:
    """Clips per CPU-second of every variant, all timed in interleaved turns (same machine state)."""
    import torch

    from pretrain.bench.data import _stream, bench_config, interleaved_clip_rates
    from pretrain.data.streams.pretrain_stream import build_pretrain_loader

    torch.set_num_threads(1)  # one core per loader process, as in training
    names = [name for name in built if name != "original"]
    iterators = {
        f"{name}|{n}": _stream(build_pretrain_loader(bench_config(built[name], 0, n), 0, 1))
        for name in names
        for n in num_samples
    }
    rates = interleaved_clip_rates(iterators, clips, 1, time.process_time)
    return [
        EncodingRow(
            name,
            {str(n): round(rates[f"{name}|{n}"], 2) for n in num_samples},
            round(gb_per_hour(built[name]), 3),
            round(first_view_psnr(built[name], built["original"]), 2),
        )
        for name in names
    ]


def format_rows(rows: list[EncodingRow]) -> str:
    today = rows[0].clips_per_cpu_s
    head = f"{'encoding':<40}{'clips/CPU-s n=1':>16}{'n=4':>8}{'vs today':>10}{'GB/hour':>9}{'PSNR dB':>9}"
    lines = [head]
    for row in rows:
        rate = row.clips_per_cpu_s
        lines.append(
            f"{row.name:<40}{rate['1']:>16.1f}{rate['4']:>8.1f}{rate['1'] / today['1']:>9.2f}x"
            f"{row.gb_per_hour:>9.2f}{row.psnr_db:>9.1f}"
        )
    return "\n".join(lines)
