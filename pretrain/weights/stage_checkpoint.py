"""A training stage's checkpoint as weights: a checkpoint folder, `last`, a run folder (its newest
valid checkpoint), or the `state`/`state.ckpt` inside one — DeepSpeed ZeRO shards or a Lightning file.

The folder is verified first (sizes and the sha256 recorded at save time); the model is the one the
checkpoint's `config.yaml` describes: a pretraining run's VideoMAE, a fine-tuning (or logits
distillation) run's classifier (with a linear probe's BatchNorm + linear head when it was one) and its
class names, or a feature distillation run's student encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pretrain.config import config_from_dict, load_config
from pretrain.errors import CheckpointError, ConfigError
from pretrain.models import arch_spec
from pretrain.weights import layout
from pretrain.weights.formats import Weights, WeightsFormat, model_config
from pretrain.weights.lightning_file import is_lightning_file, model_state, read_lightning_file
from pretrain.weights.zero import read_zero_checkpoint

FORMAT_NAME = "stage"


def read_stage_checkpoint(path: Path) -> Weights:
    checkpoint = layout.find_checkpoint(path)
    outside = layout.outside_problem(checkpoint.path, layout.CONFIG)
    if outside:  # a config.yaml linked to any file would have its content quoted in the parse error
        raise CheckpointError(f"{checkpoint.path} is not a usable checkpoint: {outside}")
    try:
        config = load_config(str(checkpoint.config_path))
    except (ConfigError, OSError) as error:
        raise CheckpointError(f"{checkpoint.config_path}: cannot read the run config ({error})") from None
    if checkpoint.deepspeed:
        state, client = read_zero_checkpoint(checkpoint.state_path)
        state, hparams = model_state(state), dict(client.get("hyper_parameters") or {})
    else:
        state, hparams = read_lightning_file(checkpoint.state_path)
    return _weights(
        state,
        config,
        hparams.get("class_names"),
        str(checkpoint.path),
        {"step": checkpoint.step, "checkpoint": checkpoint},
    )


def read_bare_lightning_file(path: Path) -> Weights:
    """A Lightning file outside a checkpoint folder: its hyper-parameters carry the run config."""
    state, hparams = read_lightning_file(path)
    return _weights(state, config_from_dict(hparams["config"]), hparams.get("class_names"), str(path), {})


def _weights(
    state: dict, config: Any, class_names: list[str] | None, source: str, extra: dict[str, Any]
) -> Weights:
    kind = "classifier" if config.trains_classifier else "pretraining"
    if config.stage == "distill" and config.distill.kind == "features":
        # an MVD student: its encoder is what carries on (the feature decoder is training scaffolding)
        kind, state = "encoder", {k: v for k, v in state.items() if k.startswith("encoder.")}
    if kind == "classifier":
        num_classes = _num_classes(state)
        class_names = list(class_names) if class_names else [f"class_{i}" for i in range(num_classes)]
    else:
        num_classes, class_names = None, None
    spec_config = model_config(
        arch_spec(config.model),
        kind,
        FORMAT_NAME,
        norm_pix_loss=config.model.norm_pix_loss,
        num_classes=num_classes,
        class_names=class_names,
    )
    return Weights(state, spec_config, run_config=config, source=source, extra=extra)


def _num_classes(state: dict) -> int:
    for key in ("head.weight", "head.1.weight"):  # a classifier's head, a linear probe's linear
        if key in state:
            return int(state[key].shape[0])
    raise CheckpointError("a fine-tuning checkpoint without a classification head (head.weight)")


STAGE_FORMAT = WeightsFormat(
    FORMAT_NAME,
    lambda path: layout.is_stage_checkpoint(path),
    read_stage_checkpoint,
    "a stage checkpoint (RUN/checkpoints/step-N, last, a run folder; ZeRO shards or state.ckpt)",
)
LIGHTNING_FORMAT = WeightsFormat(
    "lightning", is_lightning_file, read_bare_lightning_file, "a Lightning .ckpt file of a Tubelet run"
)
