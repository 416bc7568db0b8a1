"""`tubelet predict CKPT VIDEO...`: top-k classes of video files with a fine-tuned model.

Each file is decoded once by the streaming part's decoder (any container PyAV reads) into the same
multi-view test views as `tubelet evaluate` (temporal clips × spatial crops); the views' softmax
scores are averaged before ranking. A file that is not a readable video is reported and skipped;
the others still get their answers.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pretrain.data.augment.clips import ClipSettings, eval_views
from pretrain.data.augment.transforms import normalize_video
from pretrain.data.shards.listing import regular_file_problem
from pretrain.data.video.decode import DecodeError
from pretrain.errors import UserError
from pretrain.evaluate.onnx_model import is_onnx_export, load_onnx_classifier
from pretrain.weights.pretrained import Finetuned, load_finetuned

DEFAULT_STRIDE = 4


@dataclass
class Prediction:
    path: str
    topk: list[tuple[str, float]] = field(default_factory=list)
    """(class name, probability), best first."""
    error: str | None = None


@dataclass
class PredictReport:
    predictions: list[Prediction]
    views: int
    seconds: float

    @property
    def clips_per_s(self) -> float:
        return self.views / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> list[Prediction]:
        return [p for p in self.predictions if p.error]


MAX_VIEWS = {"--clips": 32, "--crops": 10}
"""Views per video: 32 windows x 3 crops of ViT-B 16 x 224^2 clips already hold 1.8 GB of floats (--clips 100000: 9 GiB)."""


def view_settings(
    finetuned: Finetuned, clips: int | None, crops: int | None
) -> tuple[ClipSettings, int, int]:
    """Frames, stride, size and view counts of the fine-tuning run (its config), or the model's."""
    spec, config = finetuned.model.spec, finetuned.config
    stride = config.data.stride if config else DEFAULT_STRIDE
    settings = ClipSettings(num_frames=spec.num_frames, stride=stride, size=spec.img_size)
    num_clips = clips or (config.data.test_clips if config else 5)
    num_crops = crops or (config.data.test_crops if config else 3)
    return settings, num_clips, num_crops


def predict_file(
    finetuned: Finetuned, path: Path, settings: ClipSettings, num_clips: int, num_crops: int, topk: int
) -> tuple[Prediction, int]:
    """One file → its prediction and the number of views scored (0 when it could not be read)."""
    problem = regular_file_problem(path)  # a FIFO would block forever, /dev/zero fill memory
    if problem:
        return Prediction(str(path), error=problem), 0
    try:
        sample = {"key": path.name, "meta": {}, "video": path}  # read as decoding needs, never whole
        video = eval_views(sample, settings, num_clips, num_crops)[0]["video"]
    except FileNotFoundError:
        return Prediction(str(path), error="no such file"), 0
    except (DecodeError, OSError, ValueError, IndexError) as error:
        return Prediction(str(path), error=f"not a video this tool can read ({error})"), 0
    spec = finetuned.model.spec  # the normalization the weights were trained with travels in the spec
    views = normalize_video(
        video if video.ndim == 5 else video[None], mean=spec.pixel_mean, std=spec.pixel_std
    )  # uint8 -> (V, C, T, S, S) float
    with torch.inference_mode():
        probs = finetuned.model(views).float().softmax(-1).mean(0)  # (K,)
    values, indices = probs.topk(min(topk, probs.numel()))
    names = finetuned.class_names
    return Prediction(str(path), [(names[int(i)], float(v)) for v, i in zip(values, indices)]), views.shape[0]


def load_classifier(checkpoint: str | Path) -> Finetuned:
    """A fine-tuned classifier from any source `load_finetuned` reads, or an ONNX export (int8 too)."""
    if is_onnx_export(checkpoint):
        model = load_onnx_classifier(checkpoint)
        return Finetuned(model, model.run_config, model.class_names)
    return load_finetuned(checkpoint)


def predict(
    checkpoint: str | Path,
    videos: Sequence[str | Path],
    topk: int = 5,
    clips: int | None = None,
    crops: int | None = None,
) -> PredictReport:
    for flag, value in (("--clips", clips), ("--crops", crops)):  # checked before the model loads
        if value is not None and not 1 <= value <= MAX_VIEWS[flag]:
            raise UserError(f"{flag} {value} must be in 1..{MAX_VIEWS[flag]} (views per video)")
    finetuned = load_classifier(checkpoint)
    settings, num_clips, num_crops = view_settings(finetuned, clips, crops)
    predictions, total_views = [], 0
    start = time.perf_counter()
    for video in videos:
        prediction, views = predict_file(finetuned, Path(video), settings, num_clips, num_crops, topk)
        predictions.append(prediction)
        total_views += views
    return PredictReport(predictions, total_views, time.perf_counter() - start)
