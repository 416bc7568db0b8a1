"""Weights whose config lies about the architecture: refused in one line, fast, in bounded memory."""

from __future__ import annotations

import json
import pickle
import re
import time
from pathlib import Path

import pytest
from limited_run import GIB, run_tubelet

from pretrain.cli import main
from pretrain.errors import CheckpointError
from pretrain.models import VideoClassifier
from pretrain.models.arch import ArchSpec
from pretrain.weights import convert_weights, describe, from_pretrained, save_export, save_hf

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


class _Planted:
    """A pickle that would create a file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _hf_backbone_folder(tmp_path: Path, model_type: object = "timesformer") -> Path:
    folder = tmp_path / "hf_backbone"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return folder


def test_a_planted_pickle_in_an_hf_timesformer_folder_is_one_line_and_never_runs(tmp_path):
    folder = _hf_backbone_folder(tmp_path)
    marker = tmp_path / "ran"
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump({"w": _Planted(marker)}, handle)
    with pytest.raises(CheckpointError, match="pytorch_model.bin") as caught:
        from_pretrained(folder)
    assert "\n" not in str(caught.value) and not marker.exists()


def test_damaged_safetensors_deep_json_and_a_list_model_type_are_one_line(tmp_path):
    folder = _hf_backbone_folder(tmp_path, "vivit")
    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    with pytest.raises(CheckpointError, match="model.safetensors: not a readable safetensors file"):
        from_pretrained(folder)
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(CheckpointError, match=r"config.json: unreadable JSON \(nested too deeply\)"):
        from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": ["vivit"]}))
    with pytest.raises(CheckpointError, match="is not a weights format Tubelet reads"):
        from_pretrained(folder)


def test_meta_json_naming_files_outside_and_a_linked_config_yaml_are_refused_unread(tmp_path):
    checkpoint = tmp_path / "run" / "checkpoints" / "step-1"
    checkpoint.mkdir(parents=True)
    (checkpoint / "meta.json").write_text(json.dumps({"step": 1, "files": {"../../../../etc/passwd": 1}}))
    with pytest.raises(CheckpointError) as caught:
        from_pretrained(checkpoint)
    assert str(caught.value).endswith(
        "meta.json names '../../../../etc/passwd', not a file inside the checkpoint folder"
    )
    secret = tmp_path / "secret.txt"
    secret.write_text("password: hunter2\n")
    (checkpoint / "meta.json").write_text(json.dumps({"step": 1, "files": {}}))
    (checkpoint / "config.yaml").symlink_to(secret)
    with pytest.raises(CheckpointError, match="config.yaml is not a plain file inside") as caught:
        from_pretrained(checkpoint)
    assert "hunter2" not in str(caught.value)


def test_an_export_is_replaced_as_a_whole_and_says_so(tmp_path, caplog, monkeypatch):
    first = _export(tmp_path)
    before = {name: (first / name).read_bytes() for name in ("model.safetensors", "config.json")}
    model = VideoClassifier(SPEC, 3)
    with caplog.at_level("WARNING", logger="pretrain.weights.export"):
        save_export(model, None, first, class_names=["x", "y", "z"])
    assert f"replacing the existing export at {first}" in caplog.text
    assert from_pretrained(first).class_names == ["x", "y", "z"]
    assert (first / "model.safetensors").stat().st_mode & 0o777 == (
        first / "config.json"
    ).stat().st_mode & 0o777

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed while the new weights were being written

    monkeypatch.setattr("pretrain.weights.export.save_file", killed)
    current = {name: (first / name).read_bytes() for name in before}
    with pytest.raises(KeyboardInterrupt):
        save_export(model, None, first, class_names=["p", "q", "r"])
    assert {name: (first / name).read_bytes() for name in before} == current  # old weights with old config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no partial folder left


def test_an_export_never_replaces_a_folder_of_other_files(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(CheckpointError, match="exists and holds files but no config.json"):
        save_export(VideoClassifier(SPEC, 3), None, tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


def test_a_full_disk_while_converting_is_one_line_and_leaves_nothing(tmp_path):
    export = _export(tmp_path)
    result = run_tubelet(["convert", str(export), str(tmp_path / "out")], file_bytes=20_000, timeout=120)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tubelet: error: ") and last.endswith(
        "cannot write (Error while serializing: I/O error: File too large (os error 27))"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]


@pytest.mark.parametrize("target", ["hf", "tubelet"])
def test_hf_auto_map_entries_never_reach_an_export(tmp_path, target):
    state, config = describe(VideoClassifier(SPEC, 3))
    save_hf(state, config, tmp_path / "hf")
    config_file = tmp_path / "hf" / "config.json"
    hf = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**hf, "auto_map": {"AutoModel": "evil.Model"}}))
    convert_weights(tmp_path / "hf", tmp_path / "out", to=target)
    assert "auto_map" not in (tmp_path / "out" / "config.json").read_text()
