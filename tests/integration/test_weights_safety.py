"""Nothing Tubelet loads may run code, and a corrupt checkpoint is never resumed silently.

One tiny real pretraining run per strategy (DeepSpeed ZeRO-2, and Lightning's own file) gives the
layouts; a pickle whose unpickling would run `touch MARKER` is planted in each file kind we read
(the checkpoint's meta.json updated as an attacker would, so sizes and checksums match) and every
entry (predict, export, convert, evaluate, finetune.init, resume) is driven through the CLI: each
says one line, exits 1, and the marker never appears. Then checksums: a newest checkpoint with
flipped bytes or a broken zip directory is passed over by `resume=auto` with a warning naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import pytest
import torch
from finetune_runs import InProcessRun, motion_shards

from pretrain.cli import main
from pretrain.config import load_config
from pretrain.train.entry import run_stage

pytestmark = pytest.mark.slow

CLASSES = ("MoveUpSlow", "MoveDownFast")
ZERO2 = ("strategy.name=deepspeed", "strategy.zero_stage=2")
QUIET = ("logging.wandb=disabled", "logging.recon_every_steps=0")
STAGE_FILES = {  # layout -> (run, file inside the checkpoint folder)
    "zero-model-states": ("zero2", "state/checkpoint/mp_rank_00_model_states.pt"),
    "zero-optim-states": ("zero2", "state/checkpoint/zero_pp_rank_0_mp_rank_00_optim_states.pt"),
    "lightning-file": ("plain", "state.ckpt"),
}
FILE_LAYOUTS = ("export", "hf-folder", "original-pth", "bare-lightning-ckpt")
ENTRIES = ("predict", "convert", "evaluate", "finetune.init")


class RunsCode:
    """Unpickling this runs a shell command (what weights_only=True must refuse)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("safety")
    shards = motion_shards(root, CLASSES, groups=(1, 8))
    made = {"shards": shards, "root": root}
    for name, extra in (("zero2", ZERO2), ("plain", ())):
        config = load_config(
            "pretrain/tiny",
            [
                f"data.shards={shards}",
                "trainer.max_steps=2",
                "trainer.checkpoint_every_steps=1",
                f"trainer.output_dir={root / 'runs'}",
                f"trainer.run_name={name}",
                *QUIET,
                *extra,
            ],
            stage="pretrain",
        )
        with InProcessRun():
            made[name] = run_stage(config).run_dir
    return made


def _rewrite_meta(folder: Path) -> None:
    """What an attacker who can write the store does: make sizes and checksums match again."""
    meta = json.loads((folder / "meta.json").read_text())
    for name in meta["files"]:
        data = (folder / name).read_bytes()
        meta["files"][name], meta["sha256"][name] = len(data), hashlib.sha256(data).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


def _plant_stage(runs: dict, layout: str, tmp_path: Path, marker: Path) -> Path:
    run, name = STAGE_FILES[layout]
    folder = tmp_path / "planted"
    shutil.copytree(runs[run] / "checkpoints" / "step-00000002", folder)
    torch.save({"module": RunsCode(marker)}, folder / name)
    _rewrite_meta(folder)
    return folder


def _plant_file(layout: str, tmp_path: Path, marker: Path) -> Path:
    evil = {"state_dict": RunsCode(marker), "hyper_parameters": {"config": {}}}
    if layout == "original-pth":
        torch.save({"model": RunsCode(marker)}, tmp_path / "evil.pth")
        return tmp_path / "evil.pth"
    if layout == "bare-lightning-ckpt":
        torch.save(evil, tmp_path / "evil.ckpt")
        return tmp_path / "evil.ckpt"
    folder = tmp_path / layout
    folder.mkdir()
    if layout == "export":  # safetensors cannot hold code: a pickle in its place is refused as unreadable
        (folder / "config.json").write_text(
            json.dumps({"format": "tubelet", "kind": "classifier", "arch": {}})
        )
        torch.save(evil, folder / "model.safetensors")
    else:
        (folder / "config.json").write_text(json.dumps({"model_type": "videomae"}))
        torch.save(evil, folder / "pytorch_model.bin")
    return folder


def _run_entry(entry: str, source: Path, runs: dict, tmp_path: Path) -> int:
    common = [f"data.shards={runs['shards']}", f"trainer.output_dir={tmp_path / 'out'}", *QUIET]
    argv = {
        "predict": ["predict", str(source), str(tmp_path / "clip.mp4")],
        "export": ["export", str(source), str(tmp_path / "export-out")],
        "convert": ["convert", str(source), str(tmp_path / "convert-out")],
        "evaluate": ["evaluate", "tiny", f"ckpt={source}", *common],
        "finetune.init": ["finetune", "tiny", f"finetune.init={source}", "trainer.max_steps=1", *common],
        "resume": [
            "pretrain",
            "tiny",
            f"trainer.resume={source}",
            "trainer.max_steps=3",
            "trainer.run_name=resumed",
            *common,
            *(ZERO2 if (source / "state").is_dir() else ()),
        ],
    }[entry]
    with InProcessRun():
        return main(argv)


def _assert_refused(code: int, capsys, marker: Path, expected: str) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tubelet:")]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert expected in lines[0], lines[0]
    assert not marker.exists(), "the planted pickle ran"


@pytest.mark.parametrize("entry", ENTRIES + ("export", "resume"))
@pytest.mark.parametrize("layout", sorted(STAGE_FILES))
def test_a_code_running_pickle_in_a_checkpoint_is_refused(runs, layout, entry, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    source = _plant_stage(runs, layout, tmp_path, marker)
    _assert_refused(_run_entry(entry, source, runs, tmp_path), capsys, marker, "refused to load")


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("layout", FILE_LAYOUTS)
def test_a_code_running_pickle_in_a_weights_file_is_refused(runs, layout, entry, tmp_path, capsys):
    marker = tmp_path / "MARKER"
    source = _plant_file(layout, tmp_path, marker)
    expected = "not a readable safetensors file" if layout == "export" else "refused to load"
    _assert_refused(_run_entry(entry, source, runs, tmp_path), capsys, marker, expected)


def _corrupt(file: Path, how: str) -> None:
    data = bytearray(file.read_bytes())
    if how == "flipped-bytes":
        data[len(data) // 2] ^= 0xFF
    else:  # the zip's central directory (at the end) overwritten: same size, unreadable
        data[-200:] = bytes(200)
    file.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flipped-bytes", "broken-zip-directory"])
def test_resume_auto_passes_over_a_corrupt_newest_checkpoint(runs, how, tmp_path, caplog):
    run = tmp_path / "runs" / "zero2"
    shutil.copytree(runs["zero2"], run, symlinks=True)
    newest = run / "checkpoints" / "step-00000002"
    _corrupt(newest / STAGE_FILES["zero-optim-states"][1], how)
    config = load_config(
        "pretrain/tiny",
        [
            f"data.shards={runs['shards']}",
            "trainer.max_steps=3",
            "trainer.checkpoint_every_steps=5",
            f"trainer.output_dir={tmp_path / 'runs'}",
            "trainer.run_name=zero2",
            "trainer.resume=auto",
            *QUIET,
            *ZERO2,
        ],
        stage="pretrain",
    )
    with InProcessRun(), caplog.at_level(logging.WARNING):
        result = run_stage(config)
    assert result.resumed_from == run / "checkpoints" / "step-00000001" and result.global_step == 3
    warnings = [r.getMessage() for r in caplog.records if "skipping checkpoint" in r.getMessage()]
    assert len(warnings) == 1 and str(newest) in warnings[0] and "sha256" in warnings[0], warnings


def test_a_corrupt_checkpoint_asked_for_by_name_is_one_line(runs, tmp_path, capsys):
    folder = tmp_path / "bad"
    shutil.copytree(runs["plain"] / "checkpoints" / "step-00000002", folder)
    _corrupt(folder / "state.ckpt", "flipped-bytes")
    marker = tmp_path / "MARKER"
    for entry in ("export", "finetune.init", "resume"):
        _assert_refused(
            _run_entry(entry, folder, runs, tmp_path),
            capsys,
            marker,
            "state.ckpt does not match the sha256 recorded when it was saved",
        )


def test_our_zero_consolidation_equals_deepspeeds_own(runs):
    """The safe reader gives exactly what DeepSpeed's zero_to_fp32 (which unpickles freely) gives."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    from pretrain.weights.zero import read_zero_checkpoint

    state = runs["zero2"] / "checkpoints" / "last" / "state"
    ours, client = read_zero_checkpoint(state)
    reference = get_fp32_state_dict_from_zero_checkpoint(str(state))
    assert ours.keys() == reference.keys() and client["global_step"] == 2
    assert all(torch.equal(ours[k], reference[k]) for k in reference)
