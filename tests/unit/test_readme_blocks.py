"""Every code block of the README runs as written, or says why not: Python blocks run against a
tiny classifier export; shell blocks marked `<!-- readme-test: run -->` run their `tubelet` lines;
every other shell block carries `<!-- readme-test: skip (REASON) -->`."""

from __future__ import annotations

import re
import runpy
import shlex
from pathlib import Path

import pytest
import torch

from pretrain.cli import main
from pretrain.config import config_to_dict, load_config
from pretrain.data.generated.motion_dataset import motion_frames
from pretrain.data.video.write import write_video
from pretrain.models import build_finetune_model
from pretrain.weights import save_export

README = Path(__file__).parents[2] / "README.md"
BLOCK = re.compile(r"(?:<!-- readme-test: (?P<mark>[^>]*) -->\n)?```(?P<lang>\w*)\n(?P<code>.*?)```", re.S)
CLASSES = ["MoveUpSlow", "MoveDownSlow", "MoveUpFast"]


def blocks(lang: str) -> list[tuple[str | None, str]]:
    return [(m["mark"], m["code"]) for m in BLOCK.finditer(README.read_text()) if m["lang"] == lang]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The names the README uses: export/ucf101_b (a tiny classifier), clip.mp4, clip1.mp4, clip2.avi."""
    root = tmp_path_factory.mktemp("readme")
    config = load_config("finetune/tiny", stage="finetune")
    torch.manual_seed(0)
    model = build_finetune_model(config, num_classes=len(CLASSES))
    save_export(model, config_to_dict(config), root / "export" / "ucf101_b", class_names=CLASSES)
    make = motion_frames(CLASSES, num_frames=16)
    for index, name in enumerate(("clip.mp4", "clip1.mp4", "clip2.avi")):
        write_video(root / name, make(index, index))
    return root


def test_every_shell_block_runs_or_says_why_not():
    marks = [mark for lang in ("bash", "text") for mark, _ in blocks(lang)]
    assert marks and all(mark == "run" or re.fullmatch(r"skip \(.+\)", mark or "") for mark in marks), marks
    assert marks.count("run") >= 2


def test_python_blocks_run_as_written(workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    (python,) = blocks("python")
    script = workdir / "snippet.py"
    script.write_text(python[1])
    runpy.run_path(str(script), run_name="__main__")
    assert capsys.readouterr().out.strip() in CLASSES


@pytest.mark.parametrize("code", [code for mark, code in blocks("bash") if mark == "run"])
def test_marked_shell_blocks_run(code, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    for line in code.splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[0] == "tubelet", line
        assert main(argv[1:]) == 0, line
    assert capsys.readouterr().out
