"""Writing weights out: `tubelet export` (a stage checkpoint -> our export) and `tubelet convert`
(any source -> our export or a Hugging Face folder). The weights are first loaded strictly into
the model they describe, so a conversion that succeeds is a model that runs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pretrain.config import config_to_dict
from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.weights.backbone_formats import save_hf_any
from pretrain.weights.build import build_model
from pretrain.weights.export import FORMAT_NAME, write_export
from pretrain.weights.formats import read_weights
from pretrain.weights.stage_checkpoint import read_stage_checkpoint
from pretrain.weights.videomae_hf import save_hf

log = logging.getLogger(__name__)
TARGETS = (FORMAT_NAME, "hf")


def export_checkpoint(path: str | Path, out_dir: str | Path) -> Path:
    """Pretraining checkpoints export the VideoMAE; fine-tuning ones the classifier + class names."""
    weights = read_stage_checkpoint(Path(path))
    build_model(weights.state, weights.model_config, weights.source)  # strict: every tensor, every shape
    out = write_export(
        weights.state,
        weights.model_config,
        out_dir,
        run_config=config_to_dict(weights.run_config) if weights.run_config else None,
    )
    log.info("exported %s %s -> %s (%d tensors)", weights.kind, path, out, len(weights.state))
    return out


def convert_weights(
    src: str | Path,
    out_dir: str | Path,
    to: str = FORMAT_NAME,
    num_frames: int | None = None,
    img_size: int | None = None,
) -> dict[str, Any]:
    """Convert weights of any supported source to our export or a HF folder."""
    if to not in TARGETS:
        raise CheckpointError(f"unknown target format {to!r}; expected one of {', '.join(TARGETS)}")
    weights = read_weights(src)
    overrides = {k: v for k, v in (("num_frames", num_frames), ("img_size", img_size)) if v is not None}
    model_config = {**weights.model_config, **overrides}
    ArchSpec.from_dict(model_config)  # --img-size / --num-frames checked like the config schema (ConfigError)
    build_model(weights.state, model_config, str(src))
    if to == "hf":
        save_hf_any(weights.state, model_config, out_dir, save_hf)
    else:
        run_config = config_to_dict(weights.run_config) if weights.run_config else None
        write_export(weights.state, model_config, out_dir, run_config=run_config)
    return {
        "source_format": model_config["source_format"],
        "kind": model_config["kind"],
        "tensors": len(weights.state),
    }
