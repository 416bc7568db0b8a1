"""`tubelet export CKPT OUT`: any training checkpoint → `model.safetensors` + `config.json`.

DeepSpeed checkpoints (ZeRO 1/2/3, sharded over ranks) are consolidated to fp32 with DeepSpeed's
own `zero_to_fp32` utilities; Lightning files are read directly. The weights are loaded strictly
into the model the checkpoint's config describes, then written in the model package's export
format, which the fine-tune stage and `load_weights` read.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import torch

from pretrain.config import RunConfig, config_to_dict, load_config
from pretrain.models import build_pretraining_model
from pretrain.models.interop import save_export
from pretrain.models.videomae import VideoMAE
from pretrain.train import checkpoints as ckpt

log = logging.getLogger(__name__)

# Prefixes between the engine / Lightning wrappers and the VideoMAE's own parameter names.
WRAPPER_PREFIXES = ("_forward_module.", "module.")
MODEL_PREFIX = "model."


def find_checkpoint(path: Union[str, Path]) -> ckpt.Checkpoint:
    """A checkpoint folder, its state, `last`, or a run folder (its newest valid checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if (path / ckpt.CHECKPOINTS_DIR).is_dir():
        found = ckpt.latest_valid_checkpoint(path)
        if found is None:
            raise ckpt.CheckpointError(f"run folder {path} holds no valid checkpoint")
        return found
    return ckpt.read_checkpoint(path)


def consolidated_state_dict(checkpoint: ckpt.Checkpoint) -> dict[str, torch.Tensor]:
    """Full fp32 weights of the VideoMAE, whatever strategy wrote the checkpoint."""
    if checkpoint.meta.get("deepspeed"):
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(checkpoint.state_path))
    else:
        state = torch.load(checkpoint.state_path, map_location="cpu", weights_only=True)["state_dict"]
    return {_model_key(k): v for k, v in state.items() if _model_key(k) is not None}


def _model_key(key: str) -> str | None:
    for prefix in WRAPPER_PREFIXES:
        key = key.removeprefix(prefix)
    return key.removeprefix(MODEL_PREFIX) if key.startswith(MODEL_PREFIX) else None


def load_checkpoint_model(path: Union[str, Path]) -> tuple[VideoMAE, RunConfig]:
    """The VideoMAE of a training checkpoint with its weights (strict), and the run config."""
    checkpoint = find_checkpoint(path)
    config = load_config(str(checkpoint.path / ckpt.CONFIG))
    model = build_pretraining_model(config.model)
    model.load_state_dict(consolidated_state_dict(checkpoint), strict=True)
    return model, config


def export_checkpoint(path: Union[str, Path], out_dir: Union[str, Path]) -> Path:
    """Pretraining checkpoints export the VideoMAE; fine-tuning ones the classifier + class names."""
    checkpoint = find_checkpoint(path)
    if load_config(str(checkpoint.path / ckpt.CONFIG)).stage == "finetune":
        from pretrain.evaluate.checkpoint import load_finetuned  # late: evaluate builds on train

        finetuned = load_finetuned(checkpoint.path)
        config_dict = config_to_dict(finetuned.config) if finetuned.config else None
        out = save_export(finetuned.model, config_dict, out_dir, class_names=finetuned.class_names)
        log.info("exported classifier %s -> %s (%d classes)", path, out, len(finetuned.class_names))
        return out
    model, config = load_checkpoint_model(path)
    out = save_export(model, config_to_dict(config), out_dir)
    log.info("exported %s -> %s (%d tensors)", path, out, len(model.state_dict()))
    return out
