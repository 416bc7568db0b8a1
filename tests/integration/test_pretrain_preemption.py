"""Real `tubelet pretrain` processes interrupted the hard ways: SIGKILL in the middle of writing a
checkpoint (the previous ones stay loadable and `resume=auto` picks the newest valid one), and
SIGTERM to a 2-rank DeepSpeed run (both ranks save, the job exits 0, a resumed run completes)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pretrain_runs import build_folder_shards, overrides, run_cli, tubelet_command

from pretrain.weights import layout as ckpt

pytestmark = pytest.mark.slow

QUIET = ("logging.wandb=disabled", "logging.recon_every_steps=0")


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return build_folder_shards(tmp_path_factory.mktemp("corpus"))


def _start(shards: Path, out: Path, name: str, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "disabled", "DS_ACCELERATOR": "cpu"}
    command = tubelet_command("pretrain", "tiny", *overrides(shards, out, name, *QUIET, *extra))
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_sigint_as_on_a_terminal,
    )


def _sigint_as_on_a_terminal() -> None:
    """The child takes SIGINT as Ctrl-C even when the suite runs in the background (`cmd &` starts
    it with SIGINT ignored, which Python and `nohup` semantics then keep)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(condition, process: subprocess.Popen, timeout: float = 300, poll: float = 0.001) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process.poll() is not None:
            raise AssertionError(
                f"process ended early ({process.returncode}): {process.stderr.read()[-3000:]}"
            )
        time.sleep(poll)
    process.kill()
    raise AssertionError("timed out")


def _saving(root: Path) -> bool:
    """A save is in progress after at least one committed checkpoint exists."""
    return bool(ckpt.list_checkpoints(root.parent)) and any(root.glob(".tmp-step-*"))


def test_kill_during_save_leaves_the_previous_checkpoint_loadable(shards, tmp_path):
    run_dir, root = tmp_path / "killed", tmp_path / "killed" / "checkpoints"
    for _attempt in range(3):  # the kill must land while a save is half written
        process = _start(
            shards,
            tmp_path,
            "killed",
            "trainer.max_steps=500",
            "trainer.checkpoint_every_steps=1",
            "trainer.resume=auto",
        )
        _wait_for(lambda: _saving(root), process)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        if any(root.glob(".tmp-step-*")):
            break
    half_written = sorted(root.glob(".tmp-step-*"))
    assert half_written, "no kill landed inside a save in 3 attempts"
    committed = ckpt.list_checkpoints(run_dir)
    assert committed and all(ckpt.checkpoint_problem(p) is None for p in committed)
    newest = ckpt.latest_valid_checkpoint(run_dir)
    assert newest.path == committed[0] and newest.step < int(half_written[-1].name[-8:]) + 1
    # resume=auto continues from the newest complete checkpoint, ignoring the half-written one
    done = run_cli(
        "pretrain",
        "tiny",
        *overrides(
            shards, tmp_path, "killed", *QUIET, "trainer.resume=auto", f"trainer.max_steps={newest.step + 3}"
        ),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["step"] == newest.step + 3


def test_sigterm_saves_on_every_rank_exits_cleanly_and_resumes(shards, tmp_path):
    two_rank_zero2 = (
        "trainer.devices=2",
        "data.batch_size=2",
        "strategy.name=deepspeed",
        "strategy.zero_stage=2",
    )
    run_dir = tmp_path / "preempted"
    process = _start(
        shards,
        tmp_path,
        "preempted",
        *two_rank_zero2,
        "trainer.max_steps=500",
        "trainer.checkpoint_every_steps=4",
    )
    _wait_for(lambda: bool(ckpt.list_checkpoints(run_dir)), process, poll=0.05)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["stopped_by_signal"] is True and 4 <= summary["step"] < 500
    saved = ckpt.latest_valid_checkpoint(run_dir)
    assert saved.meta["reason"] == "preempted" and saved.step == summary["step"]
    shards_written = sorted(p.name for p in (saved.state_path / "checkpoint").glob("*optim_states.pt"))
    assert shards_written == [f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in (0, 1)]

    # the command the stopped run printed resumes it (here told to stop 3 steps later)
    printed = stderr.split("resume it with:\n", 1)[1].splitlines()[0].strip()
    assert printed == (
        f"tubelet pretrain {run_dir}/config.yaml trainer.run_name=preempted "
        f"trainer.output_dir={tmp_path} trainer.resume=auto"
    )
    done = run_cli(*shlex.split(printed)[1:], f"trainer.max_steps={saved.step + 3}", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    assert resumed["step"] == saved.step + 3 and resumed["stopped_by_signal"] is False
    assert f"resuming from {saved.path}" in done.stderr
    assert "dataloader is not resumable" not in done.stderr  # our stream resumes itself


def test_ctrl_c_prints_the_command_that_resumes_the_run(shards, tmp_path):
    run_dir = tmp_path / "interrupted"
    process = _start(
        shards, tmp_path, "interrupted", "trainer.max_steps=500", "trainer.checkpoint_every_steps=2"
    )
    _wait_for(lambda: bool(ckpt.list_checkpoints(run_dir)), process, poll=0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr[-3000:]
    assert (
        f"resume it (from its newest checkpoint) with:\n  tubelet pretrain {run_dir}/config.yaml "
        f"trainer.run_name=interrupted trainer.output_dir={tmp_path} trainer.resume=auto\n"
    ) in stderr
