"""Every backbone (`model.backbone`, `ArchSpec.backbone`) described once; every other place asks here.

A backbone is an encoder module (`pretrain.models.vit`, `timesformer`, `vivit`) plus one `Backbone`
entry in `BACKBONES`: how to build its encoder, which learned tables it has and on which token grid,
its FLOP count, its size defaults and what it needs from the mask. Adding a backbone is those two
steps (see the README, "a backbone").

No torch here (the config validates `model.backbone` against these names without loading torch):
the encoder is named as `"module:callable"` and imported when a model is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pretrain.models.backbone_flops import (
    divided_encoder_flops,
    factorised_encoder_flops,
    joint_encoder_flops,
)

if TYPE_CHECKING:
    from pretrain.models.arch import ArchSpec
    from pretrain.models.blocks import Encoder

TableGrids = dict[str, tuple[int, tuple[int, ...]]]
"""Learned table name inside the encoder -> (class-token rows, the grid the other rows lie on)."""


@dataclass(frozen=True)
class Backbone:
    """What the rest of Tubelet needs to know about one backbone."""

    name: str
    summary: str
    """What the encoder is, in a few words (messages, docs)."""
    encoder: str
    """`"module:callable"` building the encoder: `(spec, drop_path, final_norm, grad_checkpointing)
    -> Encoder` (an `Encoder` subclass is such a callable)."""
    flops: Callable[[ArchSpec, int], int]
    """Forward FLOPs of one clip's encoder on `tokens` patch tokens (patch embedding included)."""
    learned_tables: Callable[[ArchSpec], TableGrids] = lambda spec: {}
    """Learned position tables and their grids, resized when weights meet another grid."""
    tube_mask: bool = False
    """Needs the visible tokens on a (time slices x positions) grid: only `mask.kind=tube` trains it."""
    class_token: bool = False
    """Always has a class token and learned positions (a vit has them only with `class_token`)."""
    key_bias: bool = False
    """Default attention bias: one fused qkv bias (TimeSformer, ViViT) instead of VideoMAE's q/v."""
    temporal_transformer: bool = False
    """Has a temporal transformer over the time slices (`temporal_depth` >= 1, default from the size)."""
    marker: str | None = None
    """A parameter name (inside the encoder) only this backbone has: how a bare state dict shows it."""
    hf_model_type: Callable[[ArchSpec], str | None] = lambda spec: None
    """The transformers `model_type` of the HF folder this spec converts to (None: no HF equivalent)."""
    readers: tuple[str, ...] = ()
    """Names of the weights formats (`pretrain.weights.formats`) reading its published checkpoints."""


def _joint_tables(spec: ArchSpec) -> TableGrids:
    return {"pos_embed": (1, spec.grid)} if spec.class_token else {}


def _divided_tables(spec: ArchSpec) -> TableGrids:
    slices, height, width = spec.grid
    return {"pos_embed": (1, (height, width)), "time_embed": (0, (slices,))}


def _factorised_tables(spec: ArchSpec) -> TableGrids:
    slices, height, width = spec.grid
    return {"pos_embed": (1, (height, width)), "time_embed": (1, (slices,))}


DEFAULT_BACKBONE = "vit"

BACKBONES: dict[str, Backbone] = {
    "vit": Backbone(  # joint space-time attention (VideoMAE); with class_token, HF ViViT (Model 1)
        "vit",
        "joint space-time attention encoder (VideoMAE)",
        encoder="pretrain.models.vit:joint_encoder",
        flops=joint_encoder_flops,
        learned_tables=_joint_tables,
        hf_model_type=lambda spec: "vivit" if spec.class_token else "videomae",
        readers=("hf", "videomae", "hf-backbone"),
    ),
    "timesformer": Backbone(  # divided space-time attention
        "timesformer",
        "TimeSformer divided space-time attention encoder",
        encoder="pretrain.models.timesformer:TimeSformerEncoder",
        flops=divided_encoder_flops,
        learned_tables=_divided_tables,
        tube_mask=True,
        class_token=True,
        key_bias=True,
        marker="blocks.0.temporal_fc.weight",
        hf_model_type=lambda spec: "timesformer",
        readers=("hf-backbone", "timesformer"),
    ),
    "vivit": Backbone(  # ViViT's factorised encoder (Model 2)
        "vivit",
        "ViViT factorised encoder (Model 2; transformers' ViViT is Model 1, joint attention)",
        encoder="pretrain.models.vivit:FactorisedEncoder",
        flops=factorised_encoder_flops,
        learned_tables=_factorised_tables,
        tube_mask=True,
        class_token=True,
        key_bias=True,
        temporal_transformer=True,
        marker="temporal_blocks.0.",
    ),
}


def get_backbone(name: str) -> Backbone:
    """The registered backbone `name`; a ValueError naming the known ones otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {list(BACKBONES)}")
    return BACKBONES[name]


def build_encoder(
    spec: ArchSpec, drop_path: float = 0.0, final_norm: bool = True, grad_checkpointing: bool = False
) -> Encoder:
    """The encoder of `spec.backbone`; every encoder shares `Encoder`'s interface:
    `forward(patches, index) -> (B, num_prefix_tokens + n, D)`."""
    module, _, name = get_backbone(spec.backbone).encoder.partition(":")
    factory = getattr(importlib.import_module(module), name)
    encoder: Encoder = factory(spec, drop_path, final_norm, grad_checkpointing)
    return encoder
