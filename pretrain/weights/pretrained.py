"""Ready models out of any source: `from_pretrained`, a fine-tuned classifier with its class names
(`load_finetuned`, for evaluate and predict), and an encoder loaded into a new model (`load_encoder`,
for `finetune.init`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from pretrain.errors import CheckpointError, ConfigError
from pretrain.models.arch import ArchSpec
from pretrain.models.blocks import Encoder
from pretrain.models.classifier import VideoClassifier
from pretrain.models.positions import resize_learned_tables
from pretrain.weights.build import build_weights
from pretrain.weights.formats import read_weights

if TYPE_CHECKING:
    from pretrain.config import RunConfig

log = logging.getLogger(__name__)


def from_pretrained(path: str | Path) -> nn.Module:
    """An eval-mode model from any supported source (Tubelet export, stage checkpoint, Hugging Face
    VideoMAE folder, original VideoMAE `.pth`, Lightning file).

    A classifier maps a normalized video (B, C, T, H, W) to logits (B, K); a pretraining source gives
    the VideoMAE model, an encoder-only source the `Encoder`. Attributes travel with it:
    `class_names` (a classifier's labels, else None), `input_mean` / `input_std` (per channel, for
    pixels in [0, 1]: `video = (pixels - mean) / std`), `source_format` and `run_config` (or None)."""
    weights = read_weights(path)
    model = build_weights(weights).eval()
    spec = ArchSpec.from_dict(
        weights.model_config
    )  # the normalization the weights expect (HF ViViT: [-1, 1])
    travelling = {
        "class_names": list(weights.class_names)
        if weights.kind == "classifier" and weights.class_names
        else None,
        "input_mean": spec.pixel_mean,
        "input_std": spec.pixel_std,
        "source_format": weights.model_config["source_format"],
        "run_config": weights.run_config,
    }
    for name, value in travelling.items():  # plain attributes of the module
        setattr(model, name, value)
    return model


@dataclass
class Finetuned:
    model: VideoClassifier
    config: RunConfig | None
    """The fine-tuning run's config (None for an export that carries none)."""
    class_names: list[str]


def load_finetuned(path: str | Path, config: RunConfig | None = None) -> Finetuned:
    """The classifier at `path` in eval mode. `config` (e.g. from the evaluate recipe) is used
    when the source carries no run config of its own."""
    if not Path(path).exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    weights = read_weights(path)
    if weights.kind != "classifier":
        raise CheckpointError(
            f"{path} holds a {weights.kind} model, not a fine-tuned classifier; "
            "fine-tune it first (tubelet finetune ... finetune.init=PATH)"
        )
    model = build_weights(weights).eval()
    if not isinstance(model, VideoClassifier):
        raise CheckpointError(f"{path} builds a {type(model).__name__}, not a VideoClassifier")
    names = list(weights.class_names or [f"class_{i}" for i in range(model.num_classes)])
    return Finetuned(model, weights.run_config or config, names)


def load_encoder(path: str | Path, model: nn.Module, blame_config: str = "") -> dict[str, Any]:
    """Load the encoder weights of any source into `model.encoder` (VideoClassifier or VideoMAE).

    The model may use another frame count or image size than the weights were trained with: the
    fixed sin-cos position table is recomputed, nothing is interpolated. A final encoder norm in the
    weights is skipped when the model has none (mean pooling uses fc_norm instead). Weights that do
    not fit the model's shapes are a CheckpointError naming both shapes, or a ConfigError starting
    with `blame_config` when the caller's config chose the model (e.g. `finetune.init=...`)."""
    weights = read_weights(path)
    encoder = model.encoder
    if not isinstance(encoder, Encoder):
        raise TypeError(f"{type(model).__name__}.encoder is a {type(encoder).__name__}, not an Encoder")
    wanted = encoder.state_dict()
    loaded = {k.removeprefix("encoder."): v for k, v in weights.state.items() if k.startswith("encoder.")}
    skipped = sorted(k for k in loaded if k not in wanted)
    loaded = {k: v for k, v in loaded.items() if k in wanted}
    resized = resize_learned_tables(loaded, ArchSpec.from_dict(weights.model_config), encoder.spec, prefix="")
    if resized:
        log.info("learned position/time tables resized to this model's token grid: %s", resized)
    mismatched = [
        f"{k}: weights {tuple(v.shape)} vs model {tuple(wanted[k].shape)}"
        for k, v in loaded.items()
        if v.shape != wanted[k].shape
    ]
    missing = sorted(k for k in wanted if k not in loaded)
    if mismatched or missing:
        raise (ConfigError if blame_config else CheckpointError)(
            f"{blame_config}{': ' if blame_config else ''}encoder weights in {path} do not fit the model: "
            f"shape mismatches {mismatched[:5]}, missing {missing[:5]}"
        )
    encoder.load_state_dict(loaded, strict=True)
    source_format = weights.model_config["source_format"]
    if "step" in weights.extra:
        source_format = f"stage checkpoint (step {weights.extra['step']})"
    log.info("loaded %d encoder tensors from %s (%s); skipped %s", len(loaded), path, source_format, skipped)
    return {
        "loaded": len(loaded),
        "skipped": skipped,
        "source_format": source_format,
        "source_config": weights.model_config,
    }
