"""Hugging Face VideoMAE folders (`save_pretrained` of VideoMAEForPreTraining, VideoMAEModel or
VideoMAEForVideoClassification): read, and written so that transformers loads them — weights,
`config.json`, `preprocessor_config.json` (for `AutoImageProcessor` / `pipeline`) and a model card.
Nothing here imports transformers; names and configs are translated by `videomae_hf_naming`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.pixels import IMAGENET_MEAN, IMAGENET_STD
from pretrain.weights.export import EXPORT_CONFIG, read_json, read_safetensors, write_atomic
from pretrain.weights.formats import Tensors, Weights, WeightsFormat, model_config
from pretrain.weights.safe_load import safe_torch_load
from pretrain.weights.videomae_hf_naming import (
    HF_HEAD_NORM_EPS,
    KIND_BY_ARCHITECTURE,
    hf_config,
    spec_from_hf_config,
    state_dict_from_hf,
    state_dict_to_hf,
)

log = logging.getLogger(__name__)
FORMAT_NAME = "hf"
HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"
HF_PICKLE = "pytorch_model.bin"
PREPROCESSOR_CONFIG = "preprocessor_config.json"
MODEL_CARD = "README.md"


def is_hf_videomae(path: Path) -> bool:
    config = path / EXPORT_CONFIG
    return path.is_dir() and config.is_file() and read_json(config).get("model_type") == "videomae"


def read_hf_weights(folder: Path) -> Tensors:
    """The tensors of an HF folder: safetensors (single or sharded), else a safely loaded .bin."""
    if (folder / HF_WEIGHTS).is_file():
        return read_safetensors(folder / HF_WEIGHTS)
    index = folder / HF_INDEX
    if index.is_file():
        state: Tensors = {}
        for shard in sorted(set(read_json(index).get("weight_map", {}).values())):
            if Path(shard).name != shard:
                raise CheckpointError(f"{index} names a shard outside its folder: {shard!r}")
            state.update(read_safetensors(folder / shard))
        return state
    if (folder / HF_PICKLE).is_file():
        return safe_torch_load(folder / HF_PICKLE)
    raise CheckpointError(f"{folder} has a HF config.json but no {HF_WEIGHTS} or {HF_PICKLE}")


def read_hf_videomae(path: Path) -> Weights:
    config = read_json(path / EXPORT_CONFIG)
    state = state_dict_from_hf(read_hf_weights(path))
    kind = KIND_BY_ARCHITECTURE.get((config.get("architectures") or [""])[0]) or kind_of(state)
    spec = spec_from_hf_config(config, kind)  # CheckpointError naming the HF config's fault
    labels = config.get("id2label") or {}
    names = [labels[key] for key in sorted(labels, key=int)] if kind == "classifier" else None
    return Weights(
        state,
        model_config(
            spec,
            kind,
            FORMAT_NAME,
            norm_pix_loss=config.get("norm_pix_loss", True),
            num_classes=len(names) if names else None,
            class_names=names,
        ),
    )


def kind_of(state: Tensors) -> str:
    if "mask_token" in state:
        return "pretraining"
    return "classifier" if "head.weight" in state else "encoder"


def preprocessor_config(spec: ArchSpec) -> dict[str, Any]:
    """What `VideoMAEImageProcessor` needs: resize the short side, centre crop, ImageNet mean/std."""
    return {
        "image_processor_type": "VideoMAEImageProcessor",
        "do_resize": True,
        "size": {"shortest_edge": spec.img_size},
        "do_center_crop": True,
        "crop_size": {"height": spec.img_size, "width": spec.img_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(IMAGENET_MEAN),
        "image_std": list(IMAGENET_STD),
        "resample": 2,
        "num_frames": spec.num_frames,
    }


def model_card(spec: ArchSpec, kind: str, class_names: list[str] | None) -> str:
    classes = (
        f"{len(class_names)} classes: {', '.join(class_names[:10])}"
        + (" ..." if len(class_names) > 10 else "")
        if class_names
        else "no classification head"
    )
    return (
        f"---\nlibrary_name: transformers\ntags: [video, videomae, tubelet]\n---\n\n"
        f"# VideoMAE ({kind}) exported by Tubelet\n\n"
        f"- input: {spec.num_frames} frames x {spec.img_size}x{spec.img_size}, tubelet {spec.tubelet_size}, "
        f"patch {spec.patch_size}; ImageNet mean/std normalization (see {PREPROCESSOR_CONFIG})\n"
        f"- encoder: {spec.depth} blocks, width {spec.dim}, {spec.heads} heads\n- {classes}\n"
    )


def save_hf(
    state: Tensors, spec_config: dict[str, Any], out_dir: str | Path, class_names: list[str] | None = None
) -> Path:
    """A folder `transformers.VideoMAE*.from_pretrained` (and `pipeline`) loads."""
    spec, kind = ArchSpec.from_dict(spec_config), spec_config["kind"]
    if spec.head_norm_eps != HF_HEAD_NORM_EPS and kind != "encoder":
        log.warning(
            "transformers builds the %s LayerNorm with eps %g (not configurable; config.json's "
            "layer_norm_eps=%g applies to the encoder only); this model uses %g there, so HF "
            "outputs will differ slightly (about 1e-6 relative)",
            "fc_norm" if kind == "classifier" else "decoder norm",
            HF_HEAD_NORM_EPS,
            spec.norm_eps,
            spec.head_norm_eps,
        )
    num_classes = int(state["head.weight"].shape[0]) if kind == "classifier" else None
    names = class_names or spec_config.get("class_names")
    config = hf_config(spec, kind, spec_config.get("norm_pix_loss", True), names, num_classes)
    extra = {
        PREPROCESSOR_CONFIG: json.dumps(preprocessor_config(spec), indent=2),
        MODEL_CARD: model_card(spec, kind, names),
    }
    write_atomic(Path(out_dir), state_dict_to_hf(state, kind), config, HF_WEIGHTS, extra_files=extra)
    return Path(out_dir)


HF_VIDEOMAE_FORMAT = WeightsFormat(
    FORMAT_NAME,
    is_hf_videomae,
    read_hf_videomae,
    "a Hugging Face VideoMAE folder (config.json model_type=videomae)",
)
