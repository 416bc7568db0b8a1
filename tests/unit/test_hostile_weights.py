"""Weights whose config lies about the architecture: refused in one line, fast, in bounded memory."""

from __future__ import annotations

import json
import re
import time

import pytest
from limited_run import GIB, run_tubelet

from pretrain.cli import main
from pretrain.errors import CheckpointError
from pretrain.models import VideoClassifier
from pretrain.models.arch import ArchSpec
from pretrain.weights import describe, from_pretrained, save_export, save_hf

SPEC = ArchSpec.from_size("tiny", img_size=32, num_frames=4)


def _export(tmp_path, **arch):
    save_export(VideoClassifier(SPEC, 3), None, tmp_path / "export", class_names=["a", "b", "c"])
    config_file = tmp_path / "export" / "config.json"
    config = json.loads(config_file.read_text())
    config["arch"].update(arch)
    config_file.write_text(json.dumps(config))
    return tmp_path / "export"


def test_an_export_declaring_100000_blocks_is_one_line_in_bounded_memory(tmp_path):
    export = _export(tmp_path, depth=100_000)
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"declares depth=100000 but the weights hold at most 2 blocks"):
        from_pretrained(export)
    assert time.perf_counter() - started < 2.0
    result = run_tubelet(["convert", str(export), str(tmp_path / "out")], memory_bytes=2 * GIB, timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"tubelet: error: {export}: the config declares")
    assert not (tmp_path / "out").exists()


def test_a_hf_folder_with_num_hidden_layers_100000_is_refused(tmp_path):
    state, config = describe(VideoClassifier(SPEC, 3))
    save_hf(state, config, tmp_path / "hf")
    config_file = tmp_path / "hf" / "config.json"
    hf = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**hf, "num_hidden_layers": 100_000}))
    with pytest.raises(CheckpointError, match="declares depth=100000"):
        from_pretrained(tmp_path / "hf")


def test_a_wider_declared_model_is_compared_tensor_by_tensor_before_building(tmp_path):
    export = _export(tmp_path, dim=4096, mlp_dim=16384)
    with pytest.raises(
        CheckpointError,
        match=r"shape \['encoder.blocks.0.attn.proj.bias: config \(4096,\) vs weights \(64,\)",
    ):
        from_pretrained(export)


def test_an_id2label_shorter_than_the_head_is_refused_at_load(tmp_path):
    state, config = describe(VideoClassifier(SPEC, 3))
    save_hf(state, {**config, "class_names": ["a", "b", "c"]}, tmp_path / "hf")
    config_file = tmp_path / "hf" / "config.json"
    hf = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**hf, "id2label": {"0": "a", "1": "b"}}))
    with pytest.raises(CheckpointError, match=r"the head has 3 classes but the config names 2 \(id2label"):
        from_pretrained(tmp_path / "hf")
    export = _export(tmp_path)
    config_file = export / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "class_names": ["a"]}))
    with pytest.raises(CheckpointError, match="the head has 3 classes but the config names 1"):
        from_pretrained(export)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--img-size", "0"], "img_size=0 must be >= 1"),
        (["--img-size", "-16"], "img_size=-16 must be >= 1"),
        (["--img-size", "8"], "img_size/patch_size=8/16 must divide evenly"),
        (["--num-frames", "0"], "num_frames=0 must be >= 1"),
        (["--num-frames", "3"], "num_frames/tubelet_size=3/2 must divide evenly"),
    ],
)
def test_convert_checks_img_size_and_num_frames_like_the_schema(tmp_path, capsys, flags, message):
    export = _export(tmp_path)
    assert main(["convert", str(export), str(tmp_path / "out"), *flags]) == 2
    assert capsys.readouterr().err.strip() == f"tubelet: config error: model architecture: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "arch,message",
    [
        ({"heads": 0}, "heads=0 must be >= 1"),
        ({"patch_size": 0}, "patch_size=0 must be >= 1"),
        ({"tubelet_size": 0}, "tubelet_size=0 must be >= 1"),
        ({"dim": "64"}, "dim='64' must be a whole number"),
        ({"pixel_std": [0, 0, 0]}, "pixel_std=(0, 0, 0) must be 3 finite numbers > 0"),
    ],
)
def test_an_export_config_with_impossible_numbers_is_one_line(tmp_path, arch, message):
    with pytest.raises(CheckpointError, match=re.escape(message)):
        from_pretrained(_export(tmp_path, **arch))
