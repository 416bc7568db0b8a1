"""Command-line corner cases of issue 24's Low list: a reader that goes away, nonsense counts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from limited_run import MAIN, REPO

from pretrain.cli import main


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
