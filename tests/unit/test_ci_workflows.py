"""CI definitions: the CPU workflow runs `.ci/run`; the GPU workflow runs nightly and on demand on a
self-hosted GPU runner, installs a CUDA torch, runs the smoke run, the GPU tests and the benchmark
with arguments our own CLI accepts, and uploads smoke.json and the W&B runs; the SLURM script runs
the same three commands (checked with stub commands)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import yaml

from pretrain.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"


def _workflow(name: str) -> dict:
    loaded = yaml.safe_load((WORKFLOWS / name).read_text())
    loaded["on"] = loaded.pop(True, loaded.get("on"))  # YAML 1.1 reads the key `on` as true
    return loaded


def _commands(job: dict) -> list[list[str]]:
    """Every shell command line of the job's `run` steps, split into words."""
    lines = [line.strip() for step in job["steps"] if "run" in step for line in step["run"].splitlines()]
    return [shlex.split(line) for line in lines if line and not line.startswith("#")]


def _tubelet_argv(words: list[str]) -> list[str]:
    argv = words[1:]
    return argv[: argv.index(">")] if ">" in argv else argv


def test_the_workflows_are_shipped():
    assert sorted(p.name for p in WORKFLOWS.iterdir()) == ["ci.yml", "gpu-smoke.yml"]


def test_ci_runs_the_cpu_suite_through_ci_run():
    workflow = _workflow("ci.yml")
    assert "pull_request" in workflow["on"] and "push" in workflow["on"]
    (job,) = workflow["jobs"].values()
    assert ["bash", ".ci/run"] in _commands(job)
    assert (REPO / ".ci" / "run").is_file()


def test_gpu_smoke_runs_nightly_and_on_demand_on_a_self_hosted_gpu_runner():
    workflow = _workflow("gpu-smoke.yml")
    assert set(workflow["on"]) == {"schedule", "workflow_dispatch"}
    assert len(workflow["on"]["schedule"][0]["cron"].split()) == 5
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "gpu"]
    assert job["timeout-minutes"] <= 60


def test_gpu_smoke_installs_cuda_torch_and_runs_smoke_gpu_tests_and_bench():
    (job,) = _workflow("gpu-smoke.yml")["jobs"].values()
    commands = _commands(job)
    torch_install = [c for c in commands if c[:3] == ["pip", "install", "-q"] and "torch" in c]
    assert torch_install and "--index-url" in torch_install[0]
    assert "https://download.pytorch.org/whl/cu128" in job["env"]["TORCH_INDEX_URL"]
    tubelet = [_tubelet_argv(c) for c in commands if c[0] == "tubelet"]
    parser = build_parser()
    parsed = [
        parser.parse_args([word.replace("$BACKBONE", "vit").replace("$OUT", "out") for word in argv])
        for argv in tubelet
    ]  # our own CLI accepts every command the workflow runs
    smoke = [args for args in parsed if args.command == "smoke"]
    assert smoke and smoke[0].device == "cuda"
    bench = [args for args in parsed if args.command == "bench"]
    assert {(b.size, b.device, b.dtype) for b in bench} == {("b", "cuda", "bf16")}
    assert any(b.compile for b in bench) and any(not b.compile for b in bench)
    pytest_runs = [c for c in commands if "pytest" in c]
    assert pytest_runs and pytest_runs[0][pytest_runs[0].index("pytest") :][:3] == ["pytest", "-m", "gpu"]


def test_gpu_smoke_uploads_smoke_json_and_the_wandb_runs_even_after_a_failure():
    (job,) = _workflow("gpu-smoke.yml")["jobs"].values()
    (upload,) = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["if"] == "always()"
    paths = upload["with"]["path"].split()
    assert "gpu-smoke/smoke.json" in paths and "gpu-smoke/runs/*/wandb/" in paths
    later = job["steps"][2:]  # after checkout and install: each runs even when the one before failed
    assert all(step.get("if") == "always()" for step in later[1:])


def test_gpu_smoke_sbatch_runs_all_three_and_reports_failure(tmp_path):
    script = REPO / "launch" / "gpu_smoke.sbatch"
    assert "#SBATCH --gpus-per-node=1" in script.read_text()
    bin_dir, record = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    stub = (
        '#!/usr/bin/env bash\nprintf "%s\\n" "$(basename "$0") $*" >> "$RECORD"\n[[ "$*" != *"-m gpu"* ]]\n'
    )
    (bin_dir / "srun").write_text('#!/usr/bin/env bash\n"$@"\n')
    for name in ("tubelet", "python"):
        (bin_dir / name).write_text(stub)
    for path in bin_dir.iterdir():
        path.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin:/bin",
        "RECORD": str(record),
        "SLURM_SUBMIT_DIR": str(REPO),
        "SLURM_JOB_ID": "7",
        "TUBELET_VENV": str(tmp_path / "none"),
    }
    result = subprocess.run(
        ["bash", str(script), str(tmp_path / "out")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1  # the stubbed pytest failed; the bench still ran after it
    calls = record.read_text().splitlines()
    assert calls == [
        f"tubelet smoke --device cuda --backbone vit --out {tmp_path / 'out'}",
        "python -m pytest -m gpu -q tests",
        "tubelet bench model --size b --batch 8 --device cuda --dtype bf16 --json",
    ]
    parser = build_parser()
    for line in (calls[0], calls[2]):
        parser.parse_args(line.split()[1:])
