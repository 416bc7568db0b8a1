"""`tubelet explain CKPT VIDEO`: where in space and time a model looks, written as files.

A classifier's decision is explained by gradient-weighted attention relevance (the default), by
Grad-CAM on the last block's tokens, by attention rollout or by occlusion (`saliency`); an ONNX
export (fp32 or int8) is a black box to torch (no gradients, no attention maps), so it is
explained by occlusion only, the default for it; a pretraining checkpoint gets its per-token reconstruction error instead (what the
model cannot predict). Either way the result is a score per token of the grid `(T', H', W')`,
summing to 1, written as:

- `saliency.json`: `class`, `prob`, `method`, `grid`, `token_scores` (nested T' x H' x W'),
  `frame_scores` (one per input frame, summing to 1), `frame_indices` (source frame of each) and,
  for classifiers, the deletion-curve areas (`deletion_auc` salient-first, `random_deletion_auc`);
- `saliency.png`: the frames (titled by their time in the video) with the heat map over them, its
  colorbar, and the per-frame curve; a pretraining checkpoint's error is drawn between its 5th and
  95th percentiles, so small differences around a large mean still show (`token_errors` in the json);
- `saliency.mp4`: the overlay as a video.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from pretrain.errors import DataError, UserError
from pretrain.evaluate import saliency
from pretrain.evaluate.explain_render import HeatScale
from pretrain.evaluate.faithfulness import deletion_areas
from pretrain.evaluate.inference import Clip, InferenceModel, class_index, load_inference_model, read_clip
from pretrain.evaluate.onnx_model import OnnxClassifier

log = logging.getLogger(__name__)

METHODS = ("relevance", "gradient", "rollout", "occlusion")


@dataclass
class Explanation:
    method: str
    """'relevance', 'gradient', 'rollout', 'occlusion' or 'reconstruction'."""
    class_name: str | None
    prob: float | None
    """Probability of `class_name` (classifiers), or None."""
    token_scores: torch.Tensor
    """(T', H', W') summing to 1."""
    clip: Clip
    tubelet: int
    extra: dict = field(default_factory=dict)

    @property
    def frame_scores(self) -> list[float]:
        """One per input frame: its tubelet slot's mass shared evenly over the slot's frames."""
        per_slot = self.token_scores.sum((1, 2)) / self.tubelet  # (T',)
        return per_slot.repeat_interleave(self.tubelet).tolist()

    def heat_scale(self) -> HeatScale:
        """The picture's scale: a classifier's share of saliency per token from 0 to its maximum; a
        pretraining model's error per token, spread between its 5th and 95th percentiles."""
        times = [index / self.clip.fps for index in self.clip.frame_indices]
        if self.method != "reconstruction":
            scores = self.token_scores
            label = f"share of the saliency per token ({self.method})"
            return HeatScale(
                scores, 0.0, float(scores.max()), label, self.frame_scores, "share per frame", times
            )
        errors = torch.tensor(self.extra["token_errors"])  # (T', H', W')
        per_frame = errors.mean((1, 2)).repeat_interleave(self.tubelet).tolist()
        label = "reconstruction error per token (5th-95th percentile)"
        return HeatScale.spread(errors, label, curve=per_frame, curve_label="mean error", times=times)

    def to_json(self) -> dict:
        return {
            "class": self.class_name,
            "prob": self.prob,
            "method": self.method,
            "grid": list(self.token_scores.shape),
            "token_scores": self.token_scores.tolist(),
            "frame_scores": self.frame_scores,
            "frame_indices": self.clip.frame_indices,
            **self.extra,
        }


def explain_clip(
    loaded: InferenceModel, clip: Clip, method: str | None = None, class_name: str | None = None
) -> Explanation:
    """The explanation of one clip (uint8 `(C, T, S, S)`) by a loaded model; `method` None is
    relevance, or occlusion for an ONNX export."""
    from pretrain.data.augment.transforms import normalize_video

    spec = loaded.spec
    video = normalize_video(clip.video[None], mean=spec.pixel_mean, std=spec.pixel_std)  # (1, C, T, S, S)
    if loaded.kind == "pretraining":
        error, errors = saliency.reconstruction_error(loaded.model, video)  # errors (T', H', W')
        extra = {"reconstruction_error": error, "token_errors": errors.tolist()}
        scores = saliency.normalized(errors.flatten(), spec.grid)
        return Explanation("reconstruction", None, None, scores, clip, spec.tubelet_size, extra)
    method = method or ("occlusion" if isinstance(loaded.model, OnnxClassifier) else "relevance")
    _check_method(loaded, method)
    with torch.no_grad():
        logits = loaded.model(video)[0].float()  # (K,)
    target = class_index(loaded, class_name, logits)
    scores = method_scores(loaded.model, video, method, target)
    salient_auc, random_auc = deletion_areas(loaded.model, video, scores, target)
    prob = float(logits.softmax(-1)[target])
    extra = {"deletion_auc": salient_auc, "random_deletion_auc": random_auc}
    return Explanation(method, loaded.class_names[target], prob, scores, clip, spec.tubelet_size, extra)


def _check_method(loaded: InferenceModel, method: str) -> None:
    if method not in METHODS:
        raise DataError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    if method != "occlusion" and isinstance(loaded.model, OnnxClassifier):
        raise UserError(
            f"--method {method} needs gradients or attention maps, which an onnxruntime session does not "
            "give: use --method occlusion with this ONNX export, or explain the checkpoint it was exported from"
        )


def method_scores(model: torch.nn.Module, video: torch.Tensor, method: str, target: int) -> torch.Tensor:
    """A classifier's saliency for class `target` on video (1, C, T, H, W) normalized: (T', H', W')."""
    if method == "rollout":
        return saliency.attention_rollout(model, video)[1]
    if method == "relevance":
        return saliency.attention_relevance(model, video, target)[1]
    if method == "occlusion":
        return saliency.occlusion_saliency(model, video, target)
    return saliency.gradient_saliency(model, video, target)[1]


def explain(
    checkpoint: str | Path,
    video: str | Path,
    out_dir: str | Path,
    method: str | None = None,
    class_name: str | None = None,
) -> dict[str, Path]:
    """Explain `video` with the model at `checkpoint`; returns the written files by kind."""
    from pretrain.evaluate.explain_render import write_overlay_png, write_overlay_video

    loaded = load_inference_model(checkpoint)
    clip = read_clip(video, loaded.spec, loaded.stride)
    explanation = explain_clip(loaded, clip, method, class_name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": out / "saliency.json", "png": out / "saliency.png", "mp4": out / "saliency.mp4"}
    files["json"].write_text(json.dumps(explanation.to_json(), indent=1))
    title = _title(explanation, Path(video).name)
    scale = explanation.heat_scale()
    write_overlay_png(clip.video, scale, title, files["png"])
    write_overlay_video(clip.video, scale, files["mp4"], fps=max(clip.fps / loaded.stride, 1.0))
    log.info("%s: %s", video, title)
    return files


def _title(explanation: Explanation, name: str) -> str:
    if explanation.class_name is None:
        return f"{name}: reconstruction error (mean {explanation.extra['reconstruction_error']:.3f})"
    return f"{name}: {explanation.class_name} {100 * explanation.prob:.1f}% ({explanation.method})"
