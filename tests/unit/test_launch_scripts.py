"""launch/: the scripts are valid bash and build the command lines we expect.

Each script runs for real with `srun`, `scontrol` and `tubelet` replaced by stubs on PATH that record
their arguments; the recorded Ray arguments are then parsed by Ray's own CLI definitions and the
tubelet overrides by the config loader.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pretrain.config import load_config

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / "launch"
SCRIPTS = sorted(p for p in LAUNCH.iterdir() if p.suffix in (".sh", ".sbatch"))

STUB = """#!/usr/bin/env bash
name=$(basename "$0")
if [[ "$name" == scontrol ]]; then printf 'node-a\\nnode-b\\n'; exit 0; fi
if [[ "$name" == srun && " $* " == *" hostname --ip-address "* ]]; then echo "10.0.0.1 fe80::1"; exit 0; fi
count=$(ls "$RECORD_DIR" | wc -l)
printf '%s\\0' "$name" "$@" > "$RECORD_DIR/$(printf '%03d' "$count")"
"""


def _run_with_stubs(
    tmp_path: Path, script: Path, args: list[str], env: dict[str, str], stub_text: str = STUB
) -> list[list[str]]:
    """Run `script` with stub commands; returns the recorded calls, each [name, *args]."""
    bin_dir, records = tmp_path / "bin", tmp_path / "records"
    bin_dir.mkdir()
    records.mkdir()
    for name in ("srun", "scontrol", "tubelet"):
        stub = bin_dir / name
        stub.write_text(stub_text)
        stub.chmod(0o755)
    full_env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "RECORD_DIR": str(records),
        "HOME": str(tmp_path),
        **env,
    }
    result = subprocess.run(
        ["bash", str(script), *args], env=full_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [p.read_text().split("\0")[:-1] for p in sorted(records.iterdir())]


def test_the_expected_scripts_are_shipped_and_documented():
    assert [p.name for p in SCRIPTS] == ["gpu_smoke.sbatch", "local.sh", "ray_submit.sh", "slurm.sbatch"]
    readme = (LAUNCH / "README.md").read_text()
    assert all(p.name in readme for p in SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_is_valid_bash_and_executable(script):
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert os.access(script, os.X_OK)
    assert "set -euo pipefail" in script.read_text()


def test_sbatch_runs_ray_symmetric_run_on_every_node(tmp_path):
    from ray.scripts.scripts import start
    from ray.scripts.symmetric_run import curate_and_validate_ray_start_args

    env = {
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "node-[a-b]",
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_CPUS_PER_TASK": "32",
        "SLURM_SUBMIT_DIR": "/shared/tubelet",
    }
    calls = _run_with_stubs(tmp_path, LAUNCH / "slurm.sbatch", ["pretrain/tiny", "optim.epochs=3"], env)

    (call,) = calls
    separator = call.index("--")
    ray_part, entrypoint = call[:separator], call[separator + 1 :]
    assert ray_part == [
        "srun",
        "--export=ALL",
        "--nodes=2",
        "--ntasks=2",
        "--ntasks-per-node=1",
        "ray",
        "symmetric-run",
        "--address",
        "10.0.0.1:6379",
        "--min-nodes",
        "2",
        "--num-cpus=32",
        "--num-gpus=8",
    ]
    # Ray's own CLI accepts them: symmetric-run's options, then what it passes on to `ray start`.
    ray_start_args = curate_and_validate_ray_start_args(ray_part[7:])
    assert ray_start_args == ["--num-cpus=32", "--num-gpus=8"]
    start.make_context("start", list(ray_start_args))

    assert entrypoint == [
        "tubelet",
        "pretrain",
        "pretrain/tiny",
        "trainer.devices=1",
        "trainer.num_nodes=1",
        "cluster.launcher=ray",
        "cluster.address=auto",
        "cluster.num_workers=16",
        "cluster.use_gpu=true",
        "cluster.storage_path=/shared/tubelet/ray_results",
        "optim.epochs=3",
    ]
    config = load_config(entrypoint[2], entrypoint[3:])
    assert (config.cluster.num_workers, config.optim.epochs) == (16, 3)


# Records, after the arguments, the Ray auth environment each stubbed command saw.
ENV_STUB = (
    STUB.rstrip("\n")
    + """
printf '%s\\0' "RAY_AUTH_MODE=${RAY_AUTH_MODE:-}" "RAY_AUTH_TOKEN=${RAY_AUTH_TOKEN:-}" >> "$RECORD_DIR/$(printf '%03d' "$count")"
"""
)
SLURM_ENV = {
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_JOB_NODELIST": "node-[a-b]",
    "SLURM_GPUS_ON_NODE": "8",
    "SLURM_CPUS_PER_TASK": "32",
    "SLURM_SUBMIT_DIR": "/shared/tubelet",
}


@pytest.mark.parametrize("given", ["none", "file", "env"])
def test_sbatch_starts_ray_with_token_auth(tmp_path, given):
    env = dict(SLURM_ENV)
    if given == "file":
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("f" * 64 + "\n")
    elif given == "env":
        env["RAY_AUTH_TOKEN"] = "e" * 64
    (call,) = _run_with_stubs(tmp_path, LAUNCH / "slurm.sbatch", ["pretrain/tiny"], env, ENV_STUB)
    mode, token = call[-2:]
    assert mode == "RAY_AUTH_MODE=token"  # every node's `ray start` and the driver require the token
    value = token.removeprefix("RAY_AUTH_TOKEN=")
    assert value == {"none": value, "file": "f" * 64, "env": "e" * 64}[given]
    assert len(value) == 64 and int(value, 16) >= 0  # a generated one is 32 random bytes, like Ray's
    assert not any(value in arg for arg in call[:-2])  # in the environment, never on a command line
    assert call[:2] == ["srun", "--export=ALL"]


def test_ray_submit_uploads_this_checkout_and_runs_the_stage_on_ray(tmp_path):
    env = {"RAY_API_SERVER_ADDRESS": "http://127.0.0.1:18265", "NUM_WORKERS": "4", "NO_WAIT": "1"}
    calls = _run_with_stubs(
        tmp_path, LAUNCH / "ray_submit.sh", ["pretrain", "pretrain/tiny", "trainer.run_name=a b"], env
    )

    (call,) = calls
    assert call[:8] == [
        "tubelet",
        "submit",
        "--address",
        "http://127.0.0.1:18265",
        "--working-dir",
        str(REPO),
        "--no-wait",
        "--",
    ]
    command = call[8:]
    assert command == [
        "pretrain",
        "pretrain/tiny",
        "trainer.devices=1",
        "trainer.num_nodes=1",
        "cluster.launcher=ray",
        "cluster.num_workers=4",
        "cluster.use_gpu=true",
        "cluster.storage_path=/mnt/tubelet/ray_results",
        "trainer.run_name=a b",
    ]
    assert load_config(command[1], command[2:]).trainer.run_name == "a b"


@pytest.mark.parametrize("script", ["ray_submit.sh", "slurm.sbatch"])
def test_multi_gpu_recipes_run_on_ray_unchanged(tmp_path, script):
    """Recipes set trainer.devices/num_nodes for local runs; the Ray scripts reset them to 1."""
    env = {
        "SLURM_JOB_NUM_NODES": "8",
        "SLURM_JOB_NODELIST": "n[1-8]",
        "SLURM_GPUS_ON_NODE": "8",
        "SLURM_CPUS_PER_TASK": "64",
        "SLURM_SUBMIT_DIR": "/shared",
    }
    args = ["pretrain", "pretrain/k400_vit_b"] if script == "ray_submit.sh" else ["pretrain/k400_vit_b"]
    (call,) = _run_with_stubs(tmp_path, LAUNCH / script, [*args, "data.shards=/shared/k400"], env)
    words = call[call.index("pretrain/k400_vit_b") :]
    config = load_config(words[0], words[1:])
    assert config.cluster.launcher == "ray" and config.world_size == config.cluster.num_workers


@pytest.mark.parametrize(
    "env, placement",
    [
        ({}, ["trainer.devices=1"]),
        ({"DEVICES": "2"}, ["trainer.devices=2"]),
        ({"LAUNCHER": "ray", "NUM_WORKERS": "2"}, ["cluster.launcher=ray", "cluster.num_workers=2"]),
    ],
)
def test_local_script_places_the_run(tmp_path, env, placement):
    (call,) = _run_with_stubs(tmp_path, LAUNCH / "local.sh", ["pretrain", "pretrain/tiny"], env)
    assert call == ["tubelet", "pretrain", "pretrain/tiny", *placement]
    load_config(call[2], call[3:])


@pytest.mark.parametrize("script", ["local.sh", "ray_submit.sh"])
def test_scripts_reject_an_unknown_stage(tmp_path, script):
    result = subprocess.run(
        ["bash", str(LAUNCH / script), "train", "pretrain/tiny"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "usage:" in result.stderr
