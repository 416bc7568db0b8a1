"""`tubelet bench infer --teacher CKPT --student CKPT --held-out VIDEO...`: the light path, side by side.

Rows, in one process on the CPU: the teacher and the student in fp32 (PyTorch eager), and the student
exported to ONNX, fp32 and int8 (`tubelet export --quantize int8`), run by onnxruntime; the fp32
ONNX row separates what the runtime buys from what int8 buys. Per row: the median batch-1 latency
and the clips/s of a `batch`-clip forward (warm-up, then repetitions alternating between rows, as
`bench infer` does), top-1 on the held-out videos (the label is a video's folder name when it is a
class name) and the share of held-out videos whose top class agrees with the fp32 reference: the
teacher for the student, the student for its exports. Each model reads the centre clip of every
video at its own frames, size and stride, as `tubelet predict --stream` and `explain` do.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pretrain.bench.infer import time_alternating
from pretrain.data.augment.transforms import normalize_video
from pretrain.errors import UserError
from pretrain.evaluate.inference import InferenceModel, load_inference_model, read_clip
from pretrain.evaluate.onnx_model import load_onnx_classifier
from pretrain.evaluate.runtime_export import export_runtime

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".ts")
REFERENCE = {
    "student fp32": "teacher fp32",
    "student fp32 onnxruntime": "student fp32",
    "student int8 onnxruntime": "student fp32",
    "student int8 static onnxruntime": "student fp32",
}


@dataclass
class LightSettings:
    teacher: str
    student: str
    held_out: tuple[str, ...]
    """Video files or folders of them (searched recursively)."""
    batch: int = 4
    reps: int = 5
    warmup: int = 1
    threads: int | None = None
    calibration: tuple[str, ...] = ()
    """Video files or folders: with them, one more row, the student's static int8 (activation
    ranges calibrated on these videos' centre clips) beside the dynamic one."""


def held_out_videos(items: tuple[str, ...]) -> list[Path]:
    videos = []
    for item in map(Path, items):
        if item.is_dir():
            videos += sorted(p for p in item.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        elif item.is_file():
            videos.append(item)
        else:
            raise UserError(f"--held-out {item}: no such file or folder")
    if not videos:
        raise UserError(f"--held-out {' '.join(items)}: no video files there")
    return videos


def clips_of(loaded: InferenceModel, videos: list[Path]) -> torch.Tensor:
    """Normalized centre clips (N, C, T, S, S) of `videos` at this model's frames, size and stride."""
    spec = loaded.spec
    clips = torch.stack([read_clip(v, spec, loaded.stride).video for v in videos])  # uint8
    return normalize_video(clips, mean=spec.pixel_mean, std=spec.pixel_std)


@torch.inference_mode()
def top_classes(model: torch.nn.Module, clips: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    return torch.cat([model(clips[i : i + chunk]).argmax(-1) for i in range(0, len(clips), chunk)])  # (N,)


def _forward(model: torch.nn.Module, video: torch.Tensor) -> None:
    with torch.inference_mode():
        model(video)


def static_int8(folder: Path, calibration: torch.Tensor) -> torch.nn.Module:
    """The folder's fp32 ONNX model quantized statically, activation ranges from `calibration`
    (N, C, T, H, W) normalized clips fed one at a time, loaded for onnxruntime."""
    from pretrain.evaluate.quantize import quantize_int8
    from pretrain.runtime.quiet import library_chatter_to

    with library_chatter_to(folder / "static.log"):
        quantize_int8(
            folder / "model.onnx",
            folder / "model.static.onnx",
            mode="static",
            calibration=(clip[None].numpy() for clip in calibration),
        )
    return load_onnx_classifier(folder, model_file="model.static.onnx")


def run_light_bench(settings: LightSettings) -> dict[str, Any]:
    if settings.threads:
        torch.set_num_threads(settings.threads)
    teacher, student = load_inference_model(settings.teacher), load_inference_model(settings.student)
    for name, loaded in (("--teacher", teacher), ("--student", student)):
        if loaded.kind != "classifier":
            raise UserError(
                f"{name} {getattr(settings, name[2:])} is a {loaded.kind} model, not a classifier"
            )
    if teacher.class_names != student.class_names:
        raise UserError("--teacher and --student predict different classes: top-1 agreement means nothing")
    videos = held_out_videos(settings.held_out)
    clips = {"teacher": clips_of(teacher, videos), "student": clips_of(student, videos)}
    with tempfile.TemporaryDirectory() as folder:
        export_runtime(settings.student, folder, "onnx", quantize="int8")
        models = {
            "teacher fp32": (teacher.model, "teacher", "pytorch"),
            "student fp32": (student.model, "student", "pytorch"),
            "student fp32 onnxruntime": (
                load_onnx_classifier(folder, model_file="model.onnx"),
                "student",
                "onnx",
            ),
            "student int8 onnxruntime": (load_onnx_classifier(folder), "student", "onnx int8"),
        }
        if settings.calibration:
            models["student int8 static onnxruntime"] = (
                static_int8(Path(folder), clips_of(student, held_out_videos(settings.calibration))),
                "student",
                "onnx int8 static",
            )
    batch = [0] * settings.batch
    runs = {
        name: {
            b: functools.partial(_forward, model, clips[who][idx])
            for b, idx in ((1, [0]), (settings.batch, batch))
        }
        for name, (model, who, _) in models.items()
    }
    medians = time_alternating(runs, settings.reps, settings.warmup, torch.device("cpu"))
    tops = {name: top_classes(model, clips[who]) for name, (model, who, _) in models.items()}
    return _result(settings, teacher, videos, models, medians, tops)


def _result(settings, teacher, videos, models, medians, tops) -> dict[str, Any]:  # noqa: ANN001
    names = teacher.class_names
    labels = torch.tensor([names.index(v.parent.name) if v.parent.name in names else -1 for v in videos])
    labelled = labels >= 0
    rows = {}
    for name, (model, _, runtime) in models.items():
        reference = REFERENCE.get(name)
        rows[name] = {
            "runtime": runtime,
            "frames": model.spec.num_frames,
            "size": model.spec.img_size,
            "latency_ms": 1000 * medians[name][1],
            "clips_per_s": settings.batch / medians[name][settings.batch],
            "top1": float((tops[name] == labels)[labelled].float().mean()) if labelled.any() else None,
            "agrees_with": reference,
            "agreement": float((tops[name] == tops[reference]).float().mean()) if reference else None,
        }
    return {
        "teacher": settings.teacher,
        "student": settings.student,
        "held_out_videos": len(videos),
        "labelled": int(labelled.sum()),
        "batch": settings.batch,
        "reps": settings.reps,
        "warmup": settings.warmup,
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
