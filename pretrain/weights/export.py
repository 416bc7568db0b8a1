"""Tubelet's export format: a folder with `model.safetensors` + `config.json` (`"format": "tubelet"`).

`config.json` holds the architecture (`arch`, the `ArchSpec` fields), the `kind` and `family` of
model, `norm_pix_loss`, `num_classes` / `class_names` for a classifier, and the training run's
resolved config (`run_config`) when there was one. Only safetensors: nothing to unpickle.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from pretrain.atomic import folder_replaced_atomically
from pretrain.config import config_from_dict
from pretrain.errors import CheckpointError, ConfigError
from pretrain.models.arch import ArchSpec
from pretrain.models.blocks import Encoder
from pretrain.models.classifier import VideoClassifier
from pretrain.models.videomae import VideoMAE
from pretrain.weights.formats import Tensors, Weights, WeightsFormat, model_config

log = logging.getLogger(__name__)
FORMAT_NAME = "tubelet"
FORMAT_VERSION = 1
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "config.json"


def read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable JSON ({error})") from None
    except RecursionError:  # 100,000 nested brackets: a hostile file, not a config
        raise CheckpointError(f"{path}: unreadable JSON (nested too deeply)") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return value


def read_safetensors(path: Path) -> Tensors:
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None


def is_export(path: Path) -> bool:
    config = path / EXPORT_CONFIG
    return path.is_dir() and config.is_file() and read_json(config).get("format") == FORMAT_NAME


def read_export(path: Path) -> Weights:
    config = read_json(path / EXPORT_CONFIG)
    state = read_safetensors(path / EXPORT_WEIGHTS)
    try:
        run_config = config_from_dict(config["run_config"]) if config.get("run_config") else None
        spec = ArchSpec.from_dict(config["arch"])
    except (KeyError, TypeError, ValueError, ConfigError) as error:
        raise CheckpointError(
            f"{path / EXPORT_CONFIG}: not a valid Tubelet export config ({error})"
        ) from None
    names = config.get("class_names")
    if config["kind"] == "classifier" and not names:
        heads = [state[k] for k in ("head.weight", "head.1.weight") if k in state]
        count = int(heads[0].shape[0]) if heads else int(config.get("num_classes") or 0)
        names = [f"class_{i}" for i in range(count)]
    extra = {
        "family": config.get("family"),
        "norm_pix_loss": config.get("norm_pix_loss", True),
        "num_classes": config.get("num_classes"),
        "class_names": names,
    }
    return Weights(
        state,
        model_config(spec, config["kind"], FORMAT_NAME, **{k: v for k, v in extra.items() if v is not None}),
        run_config=run_config,
    )


def write_atomic(
    folder: Path,
    state: Tensors,
    config: dict[str, Any],
    weights_name: str,
    extra_files: dict[str, str] | None = None,
) -> None:
    """Write the whole folder beside it under a temporary name, then put it in place by rename: a
    crash leaves the old folder or the new one, never new weights beside an old config. Files get
    the umask's normal mode (safetensors writes 0600)."""
    folder = Path(folder)
    texts = {EXPORT_CONFIG: json.dumps(config, indent=2, sort_keys=True), **(extra_files or {})}
    with folder_replaced_atomically(folder, _replaceable_export) as tmp:
        save_tensors(state, tmp / weights_name)
        for name, text in texts.items():
            (tmp / name).write_text(text)
        for file in tmp.iterdir():
            os.chmod(file, default_file_mode())


def _replaceable_export(folder: Path) -> None:
    """An existing weights folder is replaced whole, and said so; a folder holding anything else is
    refused (it is not ours to delete)."""
    if not (folder / EXPORT_CONFIG).is_file():
        raise CheckpointError(
            f"{folder} exists and holds files but no {EXPORT_CONFIG}: not a weights folder to replace; "
            "choose a new or empty folder"
        )
    log.warning("replacing the existing export at %s", folder)


def save_tensors(tensors: Tensors, path: Path) -> None:
    """A safetensors file with the umask's mode; a full disk is an OSError naming the file (one line
    from the CLI), not safetensors' own error."""
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})
    except SafetensorError as error:
        raise OSError(f"{path}: cannot write ({error})") from None
    os.chmod(path, default_file_mode())


def default_file_mode() -> int:
    """0666 less the umask: what `open` gives a new file (safetensors writes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def describe(model: nn.Module) -> tuple[Tensors, dict[str, Any]]:
    """Our state dict and model config of a live model (inverse of `build.build_model`)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if isinstance(model, VideoMAE):
        return state, model_config(model.spec, "pretraining", FORMAT_NAME, norm_pix_loss=model.norm_pix_loss)
    if isinstance(model, VideoClassifier):
        return state, model_config(
            model.spec,
            "classifier",
            FORMAT_NAME,
            num_classes=model.num_classes,
            class_names=getattr(model, "class_names", None),
        )
    if isinstance(model, Encoder):
        state = {f"encoder.{k}": v for k, v in state.items()}
        spec = ArchSpec.from_dict(
            {**model.spec.to_dict(), "encoder_norm": not isinstance(model.norm, nn.Identity)}
        )
        return state, model_config(spec, "encoder", FORMAT_NAME)
    raise TypeError(f"cannot export a {type(model).__name__}; expected VideoMAE, VideoClassifier or Encoder")


def write_export(
    state: Tensors, spec_config: dict[str, Any], out_dir: str | Path, run_config: dict[str, Any] | None = None
) -> Path:
    """Our export: `model.safetensors` + `config.json` with the architecture (and the run config)."""
    spec = ArchSpec.from_dict(spec_config)
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": spec_config["kind"],
        "family": spec_config.get("family", "videomae"),
        "arch": spec.to_dict(),
        "norm_pix_loss": spec_config.get("norm_pix_loss", True),
        "num_classes": spec_config.get("num_classes"),
        "class_names": spec_config.get("class_names"),
        "run_config": run_config,
    }
    write_atomic(Path(out_dir), state, config, EXPORT_WEIGHTS)
    return Path(out_dir)


def save_export(
    model: nn.Module, config: dict[str, Any] | None, out_dir: str | Path, class_names: list[str] | None = None
) -> Path:
    """Export a live model; `config` is the resolved run config saved alongside (or None),
    `class_names` a classifier's label names."""
    state, spec_config = describe(model)
    if class_names is not None:
        spec_config["class_names"] = list(class_names)
    return write_export(state, spec_config, out_dir, run_config=config)


EXPORT_FORMAT = WeightsFormat(
    FORMAT_NAME, is_export, read_export, "a Tubelet export (model.safetensors + config.json)"
)
