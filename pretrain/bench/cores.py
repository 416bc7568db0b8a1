"""`tubelet bench cores`: how many CPU cores one GPU needs so that decoding never starves it.

cores per GPU = clips/s one GPU trains / clips/s one core decodes.

- GPU side: measured (`--from-bench`, a `tubelet bench model --json` result: our step's clips/s)
  or analytic: the training FLOPs of one clip (encoder on visible tokens, decoder on the rest;
  `pretrain.models.flops`) at a stated MFU of a stated peak (H100/H200 bf16 dense by default).
- CPU side: the pretraining pipeline's clips per CPU-second (one loader process = one core, as
  `tubelet bench data` measures with workers 0) on shards of the recommended encoding (`shards
  build --resize-short 320 --reencode`: H.264, 0.5 s keyframes), at data.num_sample 1 and 4.
  Measured here on a generated corpus (`--encoding today|train`: today's recommended encoding or
  `--train-encoding`) or on `--shards`, or the figures given on the command line.
- GPU decoding (`--gpu-decode`, data.decode_device=cuda): NVDEC's clips/s for the same stream, and
  the loader's remaining CPU work (read, draw clips, masks) in clips per CPU-second.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pretrain.models.flops import training_flops, videomae_forward_flops
from pretrain.runtime.device_peaks import PEAK_TFLOPS

H100_BF16_PEAK = PEAK_TFLOPS["H100"]["bf16"]  # dense TFLOP/s, H100 SXM (H200: the same)
DEFAULT_MFU = 0.4  # a stated assumption, not a measurement: AVION-class code reaches ~16% on A5000s


@dataclass
class CoresFigure:
    size: str
    backbone: str
    gpu_clips_per_s: float
    gpu_source: str
    """'measured: ...' or 'analytic: ...' (how the GPU rate was obtained)."""
    core_clips_per_s: dict[str, float]
    """num_sample -> clips per CPU-second of the pipeline."""
    cores_per_gpu: dict[str, float]
    gpu_decode: dict[str, float] | None = None
    """data.decode_device=cuda: NVDEC clips/s and the loader's clips per CPU-second."""


def analytic_gpu_clips_per_s(
    size: str, mask_ratio: float, mfu: float, peak_tflops: float, img_size: int = 224, num_frames: int = 16
) -> tuple[float, int]:
    """Clips/s of one GPU at `mfu` of `peak_tflops` for VideoMAE-`size`; and the FLOPs per clip."""
    from pretrain.masking import num_hidden_tokens
    from pretrain.models.arch import ArchSpec

    spec = ArchSpec.from_size(size, img_size, num_frames)
    hidden = num_hidden_tokens(spec.grid, mask_ratio)
    flops = training_flops(videomae_forward_flops(spec, spec.num_tokens - hidden, hidden))
    return mfu * peak_tflops * 1e12 / flops, flops


def measured_gpu_clips_per_s(bench_json: Path) -> tuple[float, str]:
    """Our training step's clips/s from a `tubelet bench model --json` result."""
    result = json.loads(Path(bench_json).read_text())
    clips = result["batch"] / result["ours_step_s"]
    mfu = result.get("ours_mfu")
    note = (
        f"measured: bench model {result['size']} {result['num_frames']}x{result['img_size']}^2 batch "
        f"{result['batch']} {result['dtype']} on {result['device_name']}"
    )
    return clips, note + (f", MFU {100 * mfu:.1f}%" if mfu else "")


def core_clips_per_s(shards: str, num_samples: tuple[int, ...] = (1, 4), clips: int = 48) -> dict[str, float]:
    """Clips per CPU-second of the pretraining pipeline (in-process: one core) per num_sample."""
    import torch

    from pretrain.bench.data import _stream, bench_config, interleaved_clip_rates
    from pretrain.data.streams.pretrain_stream import build_pretrain_loader

    torch.set_num_threads(1)  # one core per loader process, as in training
    iterators = {
        str(n): _stream(build_pretrain_loader(bench_config(shards, 0, n), 0, 1)) for n in num_samples
    }
    return {
        name: round(rate, 3)
        for name, rate in interleaved_clip_rates(iterators, clips, 1, time.process_time).items()
    }


def gpu_decode_rates(shards: str, clips: int = 48) -> dict[str, float]:
    """data.decode_device=cuda on `shards`: clips/s of NVDEC decoding plus the crops on the device
    (wall, synchronized) and clips per CPU-second of what stays in the loader (one core)."""
    import torch

    from pretrain.bench.data import _stream, bench_config
    from pretrain.data.streams.pretrain_stream import build_pretrain_loader

    batches = _stream(build_pretrain_loader(bench_config(shards, 0, 1, decode_device="cuda"), 0, 1))
    device = torch.device("cuda")
    next(batches)["video"].decode(device)  # decoder start-up, untimed
    torch.cuda.synchronize()
    done, loader_cpu, gpu_wall = 0, 0.0, 0.0
    while done < clips:
        started = time.process_time()
        batch = next(batches)
        loader_cpu += time.process_time() - started
        started = time.perf_counter()
        batch["video"].decode(device)
        torch.cuda.synchronize()
        gpu_wall += time.perf_counter() - started
        done += len(batch["key"])
    return {
        "gpu_decode_clips_per_s": round(done / gpu_wall, 2),
        "loader_clips_per_cpu_s": round(done / loader_cpu, 2),
    }


def recommended_shards(
    workdir: Path, videos: int = 6, frames: int = 125, train_encoding: bool = False
) -> Path:
    """A textured H.264 640x360 corpus built with the recommended options (short side 320, re-encoded),
    or with `--train-encoding`."""
    from pretrain.bench.data_corpus import CORPORA
    from pretrain.data.generated.synthetic import textured_pan_frames
    from pretrain.data.shards import BuildOptions, build_shards
    from pretrain.data.video.write import write_video

    shards = workdir / ("shards-train-encoding" if train_encoding else "shards-320-reencode")
    if (shards / "manifest.json").exists():
        return shards
    spec, raw = CORPORA["h264"], workdir / "raw-h264"
    for index in range(videos):
        write_video(
            raw / f"pan_{index:03d}{spec.suffix}",
            textured_pan_frames(frames, spec.size, spec.speed, seed=index),
            fps=25,
            bit_rate=spec.bit_rate,
            gop=spec.gop,
        )
    options = (
        BuildOptions(shard_size_mb=64, train_encoding=True)
        if train_encoding
        else BuildOptions(shard_size_mb=64, resize_short=320, reencode=True)
    )
    build_shards("folder", str(raw), str(shards), options)
    return shards


def cores_figure(
    size: str,
    backbone: str,
    gpu: tuple[float, str],
    per_core: dict[str, float],
    gpu_decode: dict[str, float] | None = None,
) -> CoresFigure:
    clips, source = gpu
    cores = {n: round(clips / rate, 2) for n, rate in per_core.items() if rate > 0}
    return CoresFigure(size, backbone, round(clips, 2), source, per_core, cores, gpu_decode)


def format_figure(figure: CoresFigure) -> str:
    lines = [
        f"VideoMAE-{figure.size} ({figure.backbone}) pretraining: one GPU trains "
        f"{figure.gpu_clips_per_s:.1f} clips/s ({figure.gpu_source})"
    ]
    for n, rate in figure.core_clips_per_s.items():
        cores = figure.cores_per_gpu.get(n, math.inf)
        lines.append(
            f"  data.num_sample={n}: one core decodes {rate:.2f} clips/s -> {cores:.1f} cores per GPU "
            f"({math.ceil(cores)} loader processes)"
        )
    if figure.gpu_decode:
        decode = figure.gpu_decode
        lines.append(
            f"  data.decode_device=cuda: NVDEC + device crops {decode['gpu_decode_clips_per_s']:.1f} clips/s "
            f"({decode['gpu_decode_clips_per_s'] / figure.gpu_clips_per_s:.2f}x the training rate); the "
            f"loader's remaining work {decode['loader_clips_per_cpu_s']:.1f} clips per CPU-second -> "
            f"{figure.gpu_clips_per_s / decode['loader_clips_per_cpu_s']:.1f} cores per GPU"
        )
    return "\n".join(lines)


def as_dict(figure: CoresFigure) -> dict:
    return asdict(figure)


def gpu_rate(
    size: str, mask_ratio: float, mfu: float, peak: float, bench_json: str | None
) -> tuple[float, str]:
    if bench_json:
        return measured_gpu_clips_per_s(Path(bench_json))
    clips, flops = analytic_gpu_clips_per_s(size, mask_ratio, mfu, peak)
    return clips, (
        f"analytic, not measured: 16x224^2, {flops / 1e9:.0f} GFLOP per clip at an assumed MFU of "
        f"{100 * mfu:.0f}% of {peak:.0f} TFLOP/s"
    )
