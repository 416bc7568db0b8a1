"""Command-line corner cases of issue 24's Low list: a reader that goes away, nonsense counts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from limited_run import MAIN, REPO

from pretrain.cli import main
from pretrain.data.generated.corpora import write_folder_tree


def test_a_closed_stdout_is_a_normal_end_exit_0_and_no_message():
    command = f"{sys.executable} -c '{MAIN}' config reference | head -1 >/dev/null; echo ${{PIPESTATUS[0]}}"
    result = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert (result.stdout.strip(), result.stderr) == ("0", "")


@pytest.mark.parametrize("flag,value", [("--clips", "100000"), ("--crops", "11")])
def test_view_counts_are_bounded_before_the_model_loads(tmp_path, capsys, flag, value):
    assert main(["predict", str(tmp_path / "no-model"), "any.mp4", flag, value]) == 1
    limit = 32 if flag == "--clips" else 10
    assert (
        capsys.readouterr().err.strip()
        == f"tubelet: error: {flag} {value} must be in 1..{limit} (views per video)"
    )


def test_keyframes_of_a_good_and_a_broken_video_writes_the_good_one_and_lists_the_other(tmp_path, capsys):
    write_folder_tree(tmp_path / "videos", classes=None, videos_per_class=1, suffixes=(".mp4",))
    video = sorted((tmp_path / "videos").glob("*.mp4"))[0]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    assert main(["keyframes", str(video), str(broken), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tubelet: error: {broken}: not a readable video (")
    written = json.loads((tmp_path / "out" / "keyframes.json").read_text())
    assert written["keyframes"] and {k["source"] for k in written["keyframes"]} == {str(video)}
    assert [e["source"] for e in written["errors"]] == [str(broken)]


@pytest.mark.parametrize("flag", ["--every", "--scene-threshold"])
def test_keyframes_refuses_nan(tmp_path, capsys, flag):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"x")
    assert main(["keyframes", str(video), "--out", str(tmp_path / "out"), flag, "nan"]) == 1
    assert capsys.readouterr().err.strip() == f"tubelet: error: {flag}=nan must be a finite number > 0"
