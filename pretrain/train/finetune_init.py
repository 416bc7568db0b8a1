"""`finetune.init`: start the classifier's encoder from weights in any format Tubelet meets.

Accepted: a Tubelet export (`model.safetensors` + `config.json`), a Hugging Face VideoMAE folder, an
original VideoMAE `.pth`, or a stage checkpoint (a checkpoint folder, `last`, a run folder, or
its Lightning `state.ckpt`; DeepSpeed ZeRO shards are consolidated first). The format is detected
by the model package's `interop`; only the encoder is taken (the head is new: the classes differ).

Shapes that fix the weights (width, depth, patch and tubelet size) must match the model, else a
clear error. Frame count and image size may differ: the position table is fixed sin-cos, so it
is recomputed for the new token grid; nothing is interpolated, and the log says so.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from pretrain.config import ConfigError, RunConfig
from pretrain.models.classifier import VideoClassifier
from pretrain.models.interop import load_encoder
from pretrain.train import checkpoints as ckpt

log = logging.getLogger(__name__)


def is_stage_checkpoint(path: Path) -> bool:
    """A checkpoint folder (or `last`), its state inside, or a run folder with checkpoints."""
    if (path / ckpt.META).is_file() or (path / ckpt.CHECKPOINTS_DIR).is_dir():
        return True
    return path.name in (ckpt.DEEPSPEED_STATE, ckpt.LIGHTNING_STATE) and (path.parent / ckpt.META).is_file()


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
    try:
        if is_stage_checkpoint(path):
            report = _load_stage_checkpoint(path, model)
        else:
            report = load_encoder(path, model)
    except (ValueError, KeyError, ckpt.CheckpointError) as error:
        raise ConfigError(f"finetune.init={init!r} cannot initialise model.size={config.model.size} "
                          f"(patch {model.spec.patch_size}, tubelet {model.spec.tubelet_size}): {error}") from None
    _note_position_table(report.get("source_config") or {}, model)
    return {"source": str(path), "format": report["source_format"], "tensors": report["loaded"],
            "skipped": report["skipped"]}


def _load_stage_checkpoint(path: Path, model: VideoClassifier) -> dict[str, Any]:
    """Consolidate the checkpoint's weights (ZeRO shards included) and load them like a file."""
    from pretrain.train.export import consolidated_state_dict, find_checkpoint

    checkpoint = find_checkpoint(path)
    state = consolidated_state_dict(checkpoint)
    with tempfile.TemporaryDirectory(prefix="tubelet-init-") as tmp:
        weights = Path(tmp) / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
        report = load_encoder(weights, model)
    report["source_format"] = f"stage checkpoint (step {checkpoint.step})"
    return report


def _note_position_table(source: dict[str, Any], model: VideoClassifier) -> None:
    spec = model.spec
    frames, size = source.get("num_frames"), source.get("img_size")
    if source.get("source_format") in ("tubelet", "hf") and (frames, size) != (spec.num_frames, spec.img_size):
        log.info("weights were trained on %s frames × %s px; this model takes %d × %d: the fixed sin-cos "
                 "position table is recomputed for the %s token grid (no interpolation needed)",
                 frames, size, spec.num_frames, spec.img_size, "×".join(map(str, spec.grid)))
