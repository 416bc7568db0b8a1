"""Hugging Face TimeSformer / ViViT folders and original TimeSformer checkpoints, read and written
(safetensors, or torch files with `weights_only=True`; nothing imports transformers).

Each reader returns `(state dict in Tubelet naming, flat model config)`: the `ArchSpec` fields plus
`kind` (encoder | classifier), `source_format`, `num_classes`, `class_names`, the shape the weights
package's format registry takes (`pretrain.weights.formats.Weights`), so registering these is one
`WeightsFormat(name, detect, read)` each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import get_backbone
from pretrain.weights import timesformer_hf, timesformer_original, vivit_hf
from pretrain.weights.export import read_json, read_safetensors, write_atomic
from pretrain.weights.safe_load import safe_torch_load

Tensors = dict[str, torch.Tensor]
CONVERTERS = {converter.MODEL_TYPE: converter for converter in (timesformer_hf, vivit_hf)}
HF_WEIGHTS, HF_CONFIG = "model.safetensors", "config.json"
ORIGINAL_SUFFIXES = (".pyth", ".pth", ".pt")


def converts_to_hf_backbone(spec: ArchSpec) -> bool:
    """Whether `spec` is written as a HF TimeSformer / ViViT folder (its backbone's HF model_type)."""
    return get_backbone(spec.backbone).hf_model_type(spec) in CONVERTERS


def hf_model_type(path: Path) -> str | None:
    """'timesformer' or 'vivit' for such a HF folder, else None (unreadable JSON: CheckpointError)."""
    config = path / HF_CONFIG
    if not (path.is_dir() and config.is_file()):
        return None
    model_type = read_json(config).get("model_type")
    return model_type if isinstance(model_type, str) and model_type in CONVERTERS else None


def _read_tensors(folder: Path) -> Tensors:
    """Safetensors, else the .bin through the one safe torch.load (a planted pickle: one line)."""
    if (folder / HF_WEIGHTS).is_file():
        return read_safetensors(folder / HF_WEIGHTS)
    if (folder / "pytorch_model.bin").is_file():
        return safe_torch_load(folder / "pytorch_model.bin")
    raise CheckpointError(f"{folder} has a HF config.json but no {HF_WEIGHTS} or pytorch_model.bin")


def flat_config(spec: ArchSpec, kind: str, fmt: str, class_names: list[str] | None = None) -> dict[str, Any]:
    return {
        **spec.to_dict(),
        "kind": kind,
        "source_format": fmt,
        "norm_pix_loss": True,
        "num_classes": len(class_names) if class_names else None,
        "class_names": class_names,
    }


def read_hf_backbone(path: str | Path) -> tuple[Tensors, dict[str, Any]]:
    """A `save_pretrained` folder of TimesformerModel / -ForVideoClassification or VivitModel /
    -ForVideoClassification -> our state dict and model config."""
    path = Path(path)
    model_type = hf_model_type(path)
    if model_type is None:
        raise CheckpointError(f"{path} is not a Hugging Face TimeSformer or ViViT folder")
    converter, config = CONVERTERS[model_type], read_json(path / HF_CONFIG)
    state = converter.state_dict_from_hf(_read_tensors(path))
    kind = "classifier" if "head.weight" in state else "encoder"
    labels = config.get("id2label") or {}
    names = [labels[key] for key in sorted(labels, key=int)] if kind == "classifier" and labels else None
    return state, flat_config(converter.spec_from_hf_config(config), kind, f"hf-{model_type}", names)


def save_hf_backbone(
    state: Tensors, model_config: dict[str, Any], out_dir: str | Path, class_names: list[str] | None = None
) -> Path:
    """Our TimeSformer (backbone timesformer) or HF-ViViT-layout vit (class token) as a folder
    transformers' `from_pretrained` loads; written as a whole beside it, then renamed into place."""
    spec, kind = ArchSpec.from_dict(model_config), model_config["kind"]
    if kind not in ("encoder", "classifier"):
        raise CheckpointError(
            f"HF TimeSformer / ViViT folders hold an encoder or a classifier, not a {kind} model"
        )
    converter = CONVERTERS[str(get_backbone(spec.backbone).hf_model_type(spec))]
    names = class_names or model_config.get("class_names")
    if kind == "classifier" and not names:
        names = [f"LABEL_{i}" for i in range(int(state["head.weight"].shape[0]))]
    config = converter.hf_config(spec, kind, names)
    folder = Path(out_dir)
    write_atomic(folder, converter.state_dict_to_hf(state, kind), config, HF_WEIGHTS)  # the folder as a whole
    return folder


def is_original_timesformer_file(path: Path) -> bool:
    return path.is_file() and path.suffix in ORIGINAL_SUFFIXES and _original_state(path) is not None


def _original_state(path: Path) -> Tensors | None:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        state = timesformer_original.unwrap(obj)
    except Exception:  # not a torch file, refused by weights_only, or no TimeSformer inside
        return None
    return state if timesformer_original.is_original_timesformer(state) else None


def read_original_timesformer(path: str | Path, heads: int | None = None) -> tuple[Tensors, dict[str, Any]]:
    """A facebookresearch/TimeSformer `.pyth` -> our state dict and model config (heads are not in
    the tensors: width // 64 unless given, 12 for ViT-B)."""
    path = Path(path)
    state = timesformer_original.state_dict_from_original(safe_torch_load(path))
    spec = timesformer_original.spec_from_original(state)
    if heads:
        spec = ArchSpec.from_dict({**spec.to_dict(), "heads": heads})
    kind = "classifier" if "head.weight" in state else "encoder"
    return state, flat_config(spec, kind, "timesformer-original")
