"""Load and save weights in every format Tubelet meets, detected from the path.

Formats:
- `tubelet`: our export, a folder with `model.safetensors` + `config.json` (`"format": "tubelet"`).
- `hf`: a transformers `save_pretrained` folder of VideoMAEForPreTraining, VideoMAEModel or
  VideoMAEForVideoClassification (`config.json` with `model_type: videomae`, then
  `model.safetensors`, a sharded safetensors index, or `pytorch_model.bin`).
- `videomae`: an original VideoMAE / VideoMAE V2 `.pth` (pretraining keys `encoder.blocks.0...`,
  fine-tuning keys `blocks.0...`), possibly wrapped in `model` / `module` / `state_dict` and with a
  key prefix (e.g. a Lightning checkpoint's `model.`). Loaded with `torch.load(weights_only=True)`.

`load_weights(path) -> (state_dict in our naming, model_config)`; model_config is a flat dict:
the `ArchSpec` fields plus `kind` (pretraining | classifier | encoder), `source_format`,
`norm_pix_loss` and `num_classes`. Position tables are fixed sin-cos and never stored, so weights
load into a model built for any frame count or image size: the table is recomputed, no
interpolation is needed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Optional, Union

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from pretrain.errors import CheckpointError
from pretrain.models.classifier import VideoClassifier
from pretrain.models.positions import resize_learned_tables
from pretrain.models.hf_naming import (
    KIND_BY_ARCHITECTURE, hf_config, spec_from_hf_config, state_dict_from_hf, state_dict_to_hf,
)
from pretrain.models.sizes import SIZES
from pretrain.models.videomae import VideoMAE
from pretrain.models.vit import ArchSpec, Encoder

log = logging.getLogger(__name__)
Tensors = dict[str, torch.Tensor]
FORMAT_NAME = "tubelet"
FORMAT_VERSION = 1
EXPORT_WEIGHTS = "model.safetensors"
EXPORT_CONFIG = "config.json"
WRAPPER_KEYS = ("model", "module", "state_dict")
HF_PATCH_KEY = "embeddings.patch_embeddings.projection.weight"
OUR_PATCH_KEY = "patch_embed.proj.weight"


def detect_format(path: Union[str, Path]) -> str:
    """'tubelet', 'hf' or 'videomae' (a torch/safetensors file of raw weights)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"weights not found: {path}")
    if path.is_file():
        return "videomae"
    config_path = path / EXPORT_CONFIG
    if not config_path.is_file():
        raise CheckpointError(f"{path} is a folder without {EXPORT_CONFIG}: not a Tubelet export or HF model folder")
    config = json.loads(config_path.read_text())
    if config.get("format") == FORMAT_NAME:
        return "tubelet"
    if config.get("model_type") == "videomae":
        return "hf"
    raise CheckpointError(f"{config_path} is neither a Tubelet export nor a HF VideoMAE config "
                     f"(format={config.get('format')!r}, model_type={config.get('model_type')!r})")


def load_weights(path: Union[str, Path]) -> tuple[Tensors, dict[str, Any]]:
    """State dict in our naming and the model config of any supported format (detected)."""
    path = Path(path)
    fmt = detect_format(path)
    if fmt == "tubelet":
        config = json.loads((path / EXPORT_CONFIG).read_text())
        state = load_file(str(path / EXPORT_WEIGHTS))
        return state, _model_config(ArchSpec.from_dict(config["arch"]), config["kind"], fmt, config)
    if fmt == "hf":
        config = json.loads((path / EXPORT_CONFIG).read_text())
        state = state_dict_from_hf(_read_hf_weights(path))
        kind = KIND_BY_ARCHITECTURE.get((config.get("architectures") or [""])[0]) or _kind_of(state)
        spec = spec_from_hf_config(config, kind)
        labels = config.get("id2label") or {}
        names = [labels[key] for key in sorted(labels, key=int)] if kind == "classifier" else None
        return state, _model_config(spec, kind, fmt, {"norm_pix_loss": config.get("norm_pix_loss", True),
                                                     "num_classes": len(names) if names else None,
                                                     "class_names": names})
    state = _unwrap(_read_file(path), path)
    kind = _kind_of(state)
    return state, _model_config(_infer_spec(state), kind, fmt, {})


def _model_config(spec: ArchSpec, kind: str, fmt: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {**spec.to_dict(), "kind": kind, "source_format": fmt,
            "norm_pix_loss": extra.get("norm_pix_loss", True), "num_classes": extra.get("num_classes"),
            "class_names": extra.get("class_names")}


def _read_file(path: Path) -> Any:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling refused or corrupt file: say which file and why
        raise CheckpointError(f"cannot read weights from {path} with weights_only=True: {error}") from error


def _read_hf_weights(folder: Path) -> Tensors:
    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        state: Tensors = {}
        for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            state.update(load_file(str(folder / shard)))
        return state
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise CheckpointError(f"{folder} has a HF config.json but no model.safetensors or pytorch_model.bin")


def _unwrap(obj: Any, path: Path) -> Tensors:
    """Find the tensor dict inside wrappers and strip the key prefix before our names."""
    while isinstance(obj, dict) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        key = next((k for k in WRAPPER_KEYS if k in obj), None)
        if key is None:
            raise CheckpointError(f"{path}: no state dict found (top-level keys: {sorted(obj)[:10]})")
        obj = obj[key]
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    keys = [k for k, v in obj.items() if isinstance(v, torch.Tensor)]
    hf_key = next((k for k in keys if k.endswith(HF_PATCH_KEY)), None)
    if hf_key is not None:  # a raw HF state dict file without its folder
        prefix = hf_key[: -len(HF_PATCH_KEY)].removesuffix("videomae.")
        return state_dict_from_hf({k[len(prefix):]: obj[k] for k in keys if k.startswith(prefix)})
    patch_key = next((k for k in keys if k.endswith(OUR_PATCH_KEY)), None)
    if patch_key is None:
        raise CheckpointError(f"{path}: no patch embedding weight (*{OUR_PATCH_KEY}) - not VideoMAE weights")
    prefix = patch_key[: -len(OUR_PATCH_KEY)]  # "encoder." (pretraining), "" (fine-tuning), + wrapper
    outer = prefix.removesuffix("encoder.")
    learned = any(k.endswith("cls_token") for k in keys)  # TimeSformer / ViViT: learned tables are weights
    state = {k[len(outer):]: obj[k] for k in keys if k.startswith(outer) and (learned or "pos_embed" not in k)}
    if not prefix.endswith("encoder."):  # fine-tuning layout: encoder parts at the top level
        state = {(f"encoder.{k}" if k.split(".")[0] in ("patch_embed", "blocks", "norm") else k): v
                 for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith("encoder.head.")}


def _kind_of(state: Tensors) -> str:
    if "mask_token" in state:
        return "pretraining"
    return "classifier" if "head.weight" in state else "encoder"


def _infer_backbone(state: Tensors, tubelet: int, patch: int) -> dict[str, Any]:
    """Backbone, its learned tables' grid (frames, image size) and biases, read from the tensors."""
    if "encoder.cls_token" not in state:
        return {}
    blocks = {k.split(".")[1] for k in state if k.startswith("encoder.temporal_blocks.")}
    backbone = ("timesformer" if "encoder.blocks.0.temporal_fc.weight" in state
                else "vivit" if blocks else "vit")
    values: dict[str, Any] = {"backbone": backbone, "key_bias": "encoder.blocks.0.attn.qkv.bias" in state,
                              "class_token": backbone == "vit"}
    if backbone != "vit":
        side = round((state["encoder.pos_embed"].shape[1] - 1) ** 0.5)
        slices = state["encoder.time_embed"].shape[1] - (backbone == "vivit")
        values.update(img_size=side * patch, num_frames=slices * tubelet)
    if backbone == "vivit":
        values["temporal_depth"] = len({k.split(".")[2] for k in state if k.startswith("encoder.temporal_blocks.")})
    return values


def _infer_spec(state: Tensors) -> ArchSpec:
    """Shapes from the tensors; head counts from the named size of the same width and depth
    (they cannot be read from weights), else width // 64. Frames and image size default to 16×224."""
    dim, _, tubelet, patch, _ = state["encoder.patch_embed.proj.weight"].shape
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.blocks."))
    size = next((s for s in SIZES.values() if (s.dim, s.depth) == (dim, depth)), None)
    values: dict[str, Any] = dict(
        **_infer_backbone(state, tubelet, patch), tubelet_size=tubelet, patch_size=patch, dim=dim, depth=depth,
        heads=size.heads if size else dim // 64, mlp_dim=state["encoder.blocks.0.mlp.fc1.weight"].shape[0],
        qkv_bias="encoder.blocks.0.attn.q_bias" in state, encoder_norm="encoder.norm.weight" in state,
    )
    if "decoder.head.weight" in state:
        decoder_dim = state["decoder.head.weight"].shape[1]
        decoder = next((s for s in SIZES.values() if s.decoder_dim == decoder_dim), None)
        values.update(
            decoder_dim=decoder_dim,
            decoder_depth=1 + max(int(k.split(".")[2]) for k in state if k.startswith("decoder.blocks.")),
            decoder_heads=decoder.decoder_heads if decoder else decoder_dim // 64,
            decoder_mlp_dim=state["decoder.blocks.0.mlp.fc1.weight"].shape[0],
        )
    log.info("inferred architecture from weight shapes: %s", values)
    return ArchSpec(**values)


def build_model(state: Tensors, model_config: dict[str, Any]) -> nn.Module:
    """The model `model_config` describes, with `state` loaded strictly (shapes checked)."""
    spec, kind = ArchSpec.from_dict(model_config), model_config["kind"]
    if kind == "pretraining":
        model: nn.Module = VideoMAE(spec, norm_pix_loss=model_config.get("norm_pix_loss", True))
    elif kind == "classifier":
        model = VideoClassifier(spec, int(state["head.weight"].shape[0]))
    else:
        model = Encoder(spec, final_norm="encoder.norm.weight" in state)
        state = {k.removeprefix("encoder."): v for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    return model


def describe(model: nn.Module) -> tuple[Tensors, dict[str, Any]]:
    """Our state dict and model config of a live model (inverse of `build_model`)."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if isinstance(model, VideoMAE):
        return state, _model_config(model.spec, "pretraining", FORMAT_NAME, {"norm_pix_loss": model.norm_pix_loss})
    if isinstance(model, VideoClassifier):
        return state, _model_config(model.spec, "classifier", FORMAT_NAME, {"num_classes": model.num_classes})
    if isinstance(model, Encoder):
        state = {f"encoder.{k}": v for k, v in state.items()}
        spec = ArchSpec.from_dict({**model.spec.to_dict(), "encoder_norm": not isinstance(model.norm, nn.Identity)})
        return state, _model_config(spec, "encoder", FORMAT_NAME, {})
    raise TypeError(f"cannot export a {type(model).__name__}; expected VideoMAE, VideoClassifier or Encoder")


def _write_atomic(folder: Path, state: Tensors, config: dict[str, Any], weights_name: str) -> None:
    """Write weights and config under temporary names, then rename, so a crash leaves no half file."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp_weights, tmp_config = folder / f".{weights_name}.tmp", folder / f".{EXPORT_CONFIG}.tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_weights), metadata={"format": "pt"})
    tmp_config.write_text(json.dumps(config, indent=2, sort_keys=True))
    os.replace(tmp_weights, folder / weights_name)
    os.replace(tmp_config, folder / EXPORT_CONFIG)


def write_export(state: Tensors, model_config: dict[str, Any], out_dir: Union[str, Path],
                 run_config: Optional[dict[str, Any]] = None) -> Path:
    """Our export: `model.safetensors` + `config.json` with the architecture (and the run config)."""
    spec = ArchSpec.from_dict(model_config)
    config = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": model_config["kind"],
              "arch": spec.to_dict(), "norm_pix_loss": model_config.get("norm_pix_loss", True),
              "num_classes": model_config.get("num_classes"), "class_names": model_config.get("class_names"),
              "run_config": run_config}
    _write_atomic(Path(out_dir), state, config, EXPORT_WEIGHTS)
    return Path(out_dir)


def save_export(model: nn.Module, config: Optional[dict[str, Any]], out_dir: Union[str, Path],
                class_names: Optional[list[str]] = None) -> Path:
    """Export a live model; `config` is the resolved run config saved alongside (or None),
    `class_names` a classifier's label names."""
    state, model_config = describe(model)
    return write_export(state, {**model_config, "class_names": class_names}, out_dir, run_config=config)


def save_hf(state: Tensors, model_config: dict[str, Any], out_dir: Union[str, Path],
            class_names: Optional[list[str]] = None) -> Path:
    """A folder `transformers.VideoMAE*.from_pretrained` loads (no transformers import needed)."""
    spec, kind = ArchSpec.from_dict(model_config), model_config["kind"]
    if spec.head_norm_eps != 1e-5 and kind != "encoder":
        log.warning("HF fixes the decoder/fc_norm LayerNorm eps at 1e-5; this model uses %g, so HF "
                    "outputs will differ slightly (about 1e-6 relative)", spec.head_norm_eps)
    num_classes = int(state["head.weight"].shape[0]) if kind == "classifier" else None
    names = class_names or model_config.get("class_names")
    config = hf_config(spec, kind, model_config.get("norm_pix_loss", True), names, num_classes)
    _write_atomic(Path(out_dir), state_dict_to_hf(state, kind), config, "model.safetensors")
    return Path(out_dir)


def load_encoder(path: Union[str, Path], model: nn.Module) -> dict[str, Any]:
    """Load the encoder weights of any format into `model.encoder` (VideoClassifier or VideoMAE).

    The model may use another frame count or image size than the weights were trained with: the
    fixed sin-cos position table is recomputed, nothing is interpolated. A final encoder norm in the
    weights is skipped when the model has none (mean pooling uses fc_norm instead)."""
    state, model_config = load_weights(path)
    encoder: Encoder = model.encoder
    wanted = encoder.state_dict()
    loaded = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    skipped = sorted(k for k in loaded if k not in wanted)
    loaded = {k: v for k, v in loaded.items() if k in wanted}
    resized = resize_learned_tables(loaded, ArchSpec.from_dict(model_config), encoder.spec, prefix="")
    if resized:
        log.info("learned position/time tables resized to this model's token grid: %s", resized)
    mismatched = [f"{k}: weights {tuple(v.shape)} vs model {tuple(wanted[k].shape)}"
                  for k, v in loaded.items() if v.shape != wanted[k].shape]
    missing = sorted(k for k in wanted if k not in loaded)
    if mismatched or missing:
        raise CheckpointError(f"encoder weights in {path} do not fit the model: "
                         f"shape mismatches {mismatched[:5]}, missing {missing[:5]}")
    encoder.load_state_dict(loaded, strict=True)
    log.info("loaded %d encoder tensors from %s (%s); skipped %s", len(loaded), path,
             model_config["source_format"], skipped)
    return {"loaded": len(loaded), "skipped": skipped, "source_format": model_config["source_format"],
            "source_config": model_config}


def convert_weights(src: Union[str, Path], out_dir: Union[str, Path], to: str = FORMAT_NAME,
                    num_frames: Optional[int] = None, img_size: Optional[int] = None) -> dict[str, Any]:
    """Convert weights of any supported format to our export or a HF folder. The weights are first
    loaded strictly into our model, so a conversion that succeeds is a model that runs."""
    if to not in (FORMAT_NAME, "hf"):
        raise ValueError(f"unknown target format {to!r}; expected 'tubelet' or 'hf'")
    state, model_config = load_weights(src)
    overrides = {k: v for k, v in (("num_frames", num_frames), ("img_size", img_size)) if v is not None}
    model_config = {**model_config, **overrides}
    try:
        build_model(state, model_config)
    except RuntimeError as error:  # load_state_dict's missing/unexpected/shape report
        raise CheckpointError(f"{src}: weights do not form a {model_config['kind']} model: {error}") from error
    if to == "hf":
        save_hf(state, model_config, out_dir)
    else:
        write_export(state, model_config, out_dir)
    return {"source_format": model_config["source_format"], "kind": model_config["kind"], "tensors": len(state)}
