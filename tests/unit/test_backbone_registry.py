"""Each `Backbone` description says what its encoder really has: learned tables on the grids it
names, its class token, its state-dict marker (and no other backbone's), its qkv-bias default, and
readers that are registered weights formats."""

from __future__ import annotations

import math

import pytest

from pretrain.models.arch import ArchSpec
from pretrain.models.backbones import BACKBONES, build_encoder, get_backbone
from pretrain.weights import FORMATS
from pretrain.weights.backbone_folders import CONVERTERS


def tiny_spec(name: str) -> ArchSpec:
    extra = {"class_token": True} if not BACKBONES[name].class_token else {}  # a vit's learned tables
    return ArchSpec.from_size(
        "tiny", img_size=32, num_frames=4, tubelet_size=2, patch_size=8, backbone=name, **extra
    )


@pytest.mark.parametrize("name", list(BACKBONES))
def test_the_description_matches_the_encoder(name):
    backbone, spec = BACKBONES[name], tiny_spec(name)
    encoder = build_encoder(spec)
    state = encoder.state_dict()
    tables = backbone.learned_tables(spec)
    assert tables, "every built-in backbone has a learned table here"
    for table, (rows, grid) in tables.items():
        assert tuple(state[table].shape) == (1, rows + math.prod(grid), spec.dim)
    assert encoder.num_prefix_tokens == 1
    markers = {other.name: other.marker for other in BACKBONES.values() if other.marker}
    found = {owner for owner, marker in markers.items() if any(key.startswith(marker) for key in state)}
    assert found == ({name} if backbone.marker else set())
    assert ("blocks.0.attn.qkv.bias" in state) == backbone.key_bias
    assert set(backbone.readers) <= {fmt.name for fmt in FORMATS}
    assert backbone.hf_model_type(spec) in {*CONVERTERS, "videomae", None}


def test_an_unknown_name_is_refused_naming_the_known_ones():
    with pytest.raises(
        ValueError, match=r"unknown backbone 'resnet'; expected one of \['vit', 'timesformer', 'vivit'\]"
    ):
        get_backbone("resnet")
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        ArchSpec(backbone="resnet")
