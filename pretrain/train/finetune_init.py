"""`finetune.init`: start the classifier's encoder from weights in any format Tubelet meets.

Accepted: whatever `pretrain.weights` reads — a Tubelet export, a Hugging Face VideoMAE folder, an
original VideoMAE `.pth`, or a stage checkpoint (a checkpoint folder, `last`, a run folder, or its
`state.ckpt`; DeepSpeed ZeRO shards are consolidated, the checksums verified). Only the encoder is
taken (the head is new: the classes differ).

Shapes that fix the weights (width, depth, patch and tubelet size) must match the model, else a
clear config error. Frame count and image size may differ: the position table is fixed sin-cos, so
it is recomputed for the new token grid; nothing is interpolated, and the log says so. A source that
cannot be read (corrupt, refused because it could run code) is a one-line CheckpointError.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pretrain.config import ConfigError, RunConfig
from pretrain.models.classifier import VideoClassifier
from pretrain.weights import load_encoder

log = logging.getLogger(__name__)


def initialise(model: VideoClassifier, config: RunConfig) -> dict[str, Any]:
    """Load `finetune.init` into `model.encoder`; returns what was loaded (for the run info)."""
    init = config.finetune.init
    if init in ("", "none"):
        if config.finetune.mode == "linear_probe":
            log.warning("linear probing a randomly initialised encoder (finetune.init=none)")
        return {"source": "none"}
    path = Path(init).expanduser()
    if not path.exists():
        raise ConfigError(f"finetune.init={init!r}: no such file or folder")
    blame = (
        f"finetune.init={init!r} cannot initialise model.size={config.model.size} "
        f"(patch {model.spec.patch_size}, tubelet {model.spec.tubelet_size})"
    )
    report = load_encoder(path, model, blame_config=blame)
    _note_position_table(report.get("source_config") or {}, model)
    return {
        "source": str(path),
        "format": report["source_format"],
        "tensors": report["loaded"],
        "skipped": report["skipped"],
    }


def _note_position_table(source: dict[str, Any], model: VideoClassifier) -> None:
    spec = model.spec
    frames, size = source.get("num_frames"), source.get("img_size")
    if source.get("source_format") in ("tubelet", "hf") and (frames, size) != (
        spec.num_frames,
        spec.img_size,
    ):
        log.info(
            "weights were trained on %s frames × %s px; this model takes %d × %d: the fixed sin-cos "
            "position table is recomputed for the %s token grid (no interpolation needed)",
            frames,
            size,
            spec.num_frames,
            spec.img_size,
            "×".join(map(str, spec.grid)),
        )
