"""A fine-tuned classifier with its run config and class names, from what fine-tuning leaves behind.

Accepted: a fine-tuning stage checkpoint (a checkpoint folder, `last`, a run folder or its
Lightning `state.ckpt`; DeepSpeed ZeRO shards are consolidated by the training part's exporter), or a Tubelet export of a classifier
(`model.safetensors` + `config.json`). The class names travel in the checkpoint's
hyper-parameters (and in an export's `config.json` as `class_names`, or its HF `id2label`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from pretrain.config import RunConfig, config_from_dict, load_config
from pretrain.errors import CheckpointError  # re-exported: no usable fine-tuned classifier at a path
from pretrain.models.classifier import VideoClassifier
from pretrain.train.finetune_module import build_finetune_model

log = logging.getLogger(__name__)


@dataclass
class Finetuned:
    model: VideoClassifier
    config: Optional[RunConfig]
    """The fine-tuning run's config (None for an export that carries none)."""
    class_names: list[str]


def load_finetuned(path: str | Path, config: Optional[RunConfig] = None) -> Finetuned:
    """The classifier at `path` in eval mode. `config` (e.g. from the evaluate recipe) is used
    when the checkpoint carries no run config of its own."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_file():
        return _from_lightning_file(path)
    if (path / "config.json").is_file():
        return _from_export(path, config)
    return _from_stage_checkpoint(path)


def _from_lightning_file(path: Path) -> Finetuned:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # corrupt, or not a checkpoint at all
        raise CheckpointError(f"{path}: cannot read a checkpoint with weights_only=True ({error})") from None
    hparams = checkpoint.get("hyper_parameters") or {}
    if "class_names" not in hparams or "config" not in hparams:
        raise CheckpointError(f"{path}: not a fine-tuning checkpoint (no class names / config in its hyper-parameters)")
    config = config_from_dict(hparams["config"])
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    return Finetuned(_build(config, len(hparams["class_names"]), state, path), config, list(hparams["class_names"]))


def _from_export(path: Path, config: Optional[RunConfig]) -> Finetuned:
    from pretrain.models.interop import load_weights

    state, model_config = load_weights(path)
    if model_config["kind"] != "classifier":
        raise CheckpointError(f"{path} holds a {model_config['kind']} model, not a fine-tuned classifier; "
                        "fine-tune it first (tubelet finetune ... finetune.init=PATH)")
    raw = json.loads((path / "config.json").read_text())
    run_config = config_from_dict(raw["run_config"]) if raw.get("run_config") else config
    num_classes = int(state["head.weight"].shape[0]) if "head.weight" in state else model_config["num_classes"]
    names = raw.get("class_names") or _hf_class_names(raw) or [f"class_{i}" for i in range(num_classes)]
    if run_config is None:
        from pretrain.models.interop import build_model

        model = build_model(state, model_config)
        return Finetuned(model.eval(), None, names)
    return Finetuned(_build(run_config, num_classes, state, path), run_config, names)


def _hf_class_names(raw: dict) -> Optional[list[str]]:
    id2label = raw.get("id2label")
    if not id2label:
        return None
    return [id2label[key] for key in sorted(id2label, key=int)]


def _from_stage_checkpoint(path: Path) -> Finetuned:
    """A checkpoint folder, `last` or a run folder; DeepSpeed shards are consolidated."""
    from pretrain.train import checkpoints as ckpt
    from pretrain.train.export import consolidated_state_dict, find_checkpoint

    checkpoint = find_checkpoint(path)
    if not checkpoint.meta.get("deepspeed"):
        return _from_lightning_file(checkpoint.state_path)
    config = load_config(str(checkpoint.path / ckpt.CONFIG))
    state = consolidated_state_dict(checkpoint)
    names = _manifest_class_names(config) or [f"class_{i}" for i in range(state["head.weight"].shape[0])]
    return Finetuned(_build(config, len(names), state, path), config, names)


def _manifest_class_names(config: RunConfig) -> Optional[list[str]]:
    """Class names of the shards the run trained on, when they can still be read."""
    from pretrain.data.shards import ShardsError, read_manifest

    try:
        return read_manifest(config.data.shards).classes or None
    except (ShardsError, OSError, ValueError):
        log.warning("cannot read the class names of %s; using class_<i>", config.data.shards)
        return None


def _build(config: RunConfig, num_classes: int, state: dict, path: Path) -> VideoClassifier:
    model = build_finetune_model(config, num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise CheckpointError(f"{path}: weights do not fit the model of its config: {error}") from None
    return model.eval()
