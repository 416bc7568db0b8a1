"""Weights -> the model they describe, loaded strictly (every tensor present, every shape right).

Builders are registered per model family (`model_config["family"]`); the VideoMAE family builds a
`VideoMAE` (pretraining), a `VideoClassifier` (with a linear probe's head when the weights have one)
or a bare `Encoder`. Another backbone registers its own builder with `register_family`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from pretrain.errors import CheckpointError
from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import build_encoder
from pretrain.models.classifier import VideoClassifier, make_linear_probe
from pretrain.models.videomae import VideoMAE
from pretrain.weights.declared import check_block_counts, check_class_names, check_shapes
from pretrain.weights.formats import FAMILY, Tensors, Weights

Builder = Callable[[Tensors, dict[str, Any]], tuple[nn.Module, Tensors]]
"""(state, model_config) -> (the untrained model, the state dict to load into it)."""

FAMILIES: dict[str, Builder] = {}


def register_family(name: str, builder: Builder) -> None:
    if name in FAMILIES:
        raise ValueError(f"model family {name!r} is registered twice")
    FAMILIES[name] = builder


def build_videomae_family(state: Tensors, model_config: dict[str, Any]) -> tuple[nn.Module, Tensors]:
    spec, kind = ArchSpec.from_dict(model_config), model_config["kind"]
    if kind == "pretraining":
        return VideoMAE(spec, norm_pix_loss=model_config.get("norm_pix_loss", True)), state
    if kind == "classifier":
        if "head.1.weight" in state:  # a linear probe: BatchNorm1d(affine=False) + linear
            return make_linear_probe(VideoClassifier(spec, int(state["head.1.weight"].shape[0]))), state
        if "head.weight" not in state:
            raise CheckpointError("a classifier without head.weight")
        return VideoClassifier(spec, int(state["head.weight"].shape[0])), state
    encoder = build_encoder(spec, final_norm="encoder.norm.weight" in state)
    # HF VivitModel's pooler (dense + tanh on the class token) has no place in our encoder
    return encoder, {k.removeprefix("encoder."): v for k, v in state.items() if not k.startswith("pooler.")}


register_family(FAMILY, build_videomae_family)


def build_model(state: Tensors, model_config: dict[str, Any], source: str = "") -> nn.Module:
    """The model `model_config` describes with `state` loaded strictly; a misfit is a CheckpointError,
    found by comparing the declared architecture with the tensors before anything is allocated."""
    family = model_config.get("family", FAMILY)
    builder = FAMILIES.get(family)
    where = f"{source}: " if source else ""
    if builder is None:
        raise CheckpointError(
            f"{where}model family {family!r} is not known here (known: {', '.join(sorted(FAMILIES))})"
        )
    check_block_counts(state, model_config, where)
    check_class_names(state, model_config, where)
    try:
        check_shapes(state, model_config, builder, where)
        model, state = builder(state, model_config)
        model.load_state_dict(state, strict=True)
    except CheckpointError:
        raise
    except (RuntimeError, KeyError, ValueError) as error:  # load_state_dict's missing/unexpected/shape report
        detail = " ".join(line.strip() for line in str(error).splitlines())[:600]
        raise CheckpointError(
            f"{where}weights do not form a {model_config['kind']} model: {detail}"
        ) from None
    return model


def build_weights(weights: Weights) -> nn.Module:
    return build_model(weights.state, weights.model_config, weights.source)
