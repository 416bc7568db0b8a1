"""Benchmark corpora that cost what real video costs to decode: textured, camera-panning frames
with a moving blob, encoded at realistic bitrates, built into real shards.

- `avi`: MPEG-4 Part 2 in AVI, 320x240, about 1 Mbit/s, keyframe every 12 frames (FFmpeg's
  default GOP), like UCF101's XviD clips;
- `h264`: H.264 in MP4, 640x360, about 2 Mbit/s, keyframe every 50 frames (2 s, typical of web
  video).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pretrain.data.generated.synthetic import textured_pan_frames
from pretrain.data.shards import BuildOptions, build_shards
from pretrain.data.video.write import write_video

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusSpec:
    suffix: str
    size: tuple[int, int]  # (height, width)
    bit_rate: int
    gop: int
    speed: float  # pan speed, pixels per frame

    def describe(self, frames: int, fps: int = 25) -> str:
        codec = "MPEG-4 Part 2 AVI" if self.suffix == ".avi" else "H.264 MP4"
        return (
            f"{codec} {self.size[1]}x{self.size[0]}, {self.bit_rate / 1e6:.1f} Mbit/s, GOP {self.gop}, "
            f"{frames} frames ({frames / fps:.1f} s at {fps} fps)"
        )


CORPORA = {
    "avi": CorpusSpec(".avi", (240, 320), 1_000_000, 12, 3.0),
    "h264": CorpusSpec(".mp4", (360, 640), 2_000_000, 50, 5.0),
}


def write_bench_corpus(kind: str, shards_dir: Path, videos: int, frames: int) -> Path:
    """Encode `videos` textured clips of `kind` under `shards_dir/raw` and build shards in
    `shards_dir`; an existing manifest is reused. Returns `shards_dir`."""
    spec = CORPORA[kind]
    shards_dir = Path(shards_dir)
    if (shards_dir / "manifest.json").exists():
        return shards_dir
    raw = shards_dir.parent / f"{shards_dir.name}-raw"
    log.info("benchmark corpus: %d videos, %s", videos, spec.describe(frames))
    for index in range(videos):
        path = raw / f"pan_{index:03d}{spec.suffix}"
        if not path.exists():
            write_video(
                path,
                textured_pan_frames(frames, spec.size, spec.speed, seed=index),
                fps=25,
                bit_rate=spec.bit_rate,
                gop=spec.gop,
            )
    build_shards("folder", str(raw), str(shards_dir), BuildOptions(shard_size_mb=64))
    return shards_dir
