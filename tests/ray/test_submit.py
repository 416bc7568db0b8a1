"""`tubelet submit` against a real local Ray head with the Jobs API (started and stopped here)."""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest
from local_ray import LocalRayCluster, cluster_env

from pretrain.cli import main
from pretrain.config import config_to_yaml, load_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def head(tmp_path_factory):
    cluster = LocalRayCluster(tmp_path_factory.mktemp("submit"))
    cluster.start_head(num_cpus=1)
    yield cluster
    cluster.stop()


def _job_status(address: str, job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address).get_job_status(job_id).value


def test_successful_job_prints_id_streams_logs_and_exits_zero(head, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    code = main(
        [
            "submit",
            "--address",
            head.dashboard_url,
            "--working-dir",
            str(REPO),
            "--",
            "config",
            "show",
            "pretrain/tiny",
            "optim.base_lr=0.002",
        ]
    )
    out = capsys.readouterr().out
    job_id = out.splitlines()[0]
    assert code == 0, out
    assert job_id.startswith("raysubmit_")
    # The job's own output is the exact resolved config, streamed back through the logs.
    expected = config_to_yaml(load_config("pretrain/tiny", ["optim.base_lr=0.002"]))
    assert expected in out
    assert _job_status(head.dashboard_url, job_id) == "SUCCEEDED"


def test_failing_job_reports_failure_and_exits_nonzero(head, capsys):
    code = main(
        ["submit", "--address", head.dashboard_url, "--", "config", "show", "pretrain/no_such_recipe"]
    )
    captured = capsys.readouterr()
    job_id = captured.out.splitlines()[0]
    assert code == 1
    assert "recipe 'pretrain/no_such_recipe' is neither" in captured.out
    assert f"job {job_id} FAILED" in captured.err
    assert _job_status(head.dashboard_url, job_id) == "FAILED"


def test_no_wait_returns_an_id_that_stop_stops(head, capsys):
    # A job that keeps RUNNING until stopped: on the cluster, it follows an inner job that stays
    # PENDING forever (it asks for 2 CPUs from a 1-CPU head).
    inner = [
        "submit",
        "--address",
        head.dashboard_url,
        "--entrypoint-num-cpus",
        "2",
        "--",
        "config",
        "show",
        "pretrain/tiny",
    ]
    code = main(["submit", "--address", head.dashboard_url, "--no-wait", "--", *inner])
    job_id = capsys.readouterr().out.strip()
    assert code == 0
    assert job_id.startswith("raysubmit_")
    _wait_for_status(head.dashboard_url, job_id, "RUNNING")

    assert main(["submit", "--address", head.dashboard_url, "--stop", job_id]) == 0
    assert f"job {job_id} STOPPED" in capsys.readouterr().out
    assert _job_status(head.dashboard_url, job_id) == "STOPPED"


def _wait_for_status(address: str, job_id: str, wanted: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while (status := _job_status(address, job_id)) != wanted:
        assert time.monotonic() < deadline, f"job {job_id} still {status}, expected {wanted}"
        time.sleep(0.5)


def test_secret_env_names_are_refused_before_submitting(head, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "not-a-real-key-0123456789")
    code = main(
        [
            "submit",
            "--address",
            head.dashboard_url,
            "--env",
            "WANDB_API_KEY",
            "--",
            "config",
            "show",
            "pretrain/tiny",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "--env WANDB_API_KEY looks like a secret" in captured.err
    assert "not-a-real-key" not in captured.out + captured.err
    assert captured.out == ""  # nothing was submitted, so no job id


def test_unreachable_address_is_a_clear_error(capsys):
    from local_ray import free_port

    address = f"http://127.0.0.1:{free_port()}"
    code = main(["submit", "--address", address, "--", "config", "show", "pretrain/tiny"])
    assert code == 1
    assert f"cannot reach the Ray Jobs API at {address}" in capsys.readouterr().err


def test_stopping_an_unknown_job_is_a_clear_error(head, capsys):
    code = main(["submit", "--address", head.dashboard_url, "--stop", "raysubmit_doesnotexist"])
    assert code == 1
    assert "no job 'raysubmit_doesnotexist' on this cluster" in capsys.readouterr().err


def test_token_auth_cluster_refuses_clients_without_the_token(tmp_path, tmp_path_factory):
    """The shipped clusters run with RAY_AUTH_MODE=token: only a client holding the token submits.
    Clients run as subprocesses so this process's Ray auth settings stay untouched."""
    token = secrets.token_hex(16)
    env = cluster_env(auth_mode="token")
    env["RAY_AUTH_TOKEN"] = token
    cluster = LocalRayCluster(tmp_path_factory.mktemp("auth"), env=env)  # short: unix socket paths
    cluster.start_head(num_cpus=1)
    try:
        client = {**os.environ, "PATH": env["PATH"], "HOME": str(tmp_path)}  # no ~/.ray/auth_token
        without = _cli_submit(cluster, {**client, "RAY_AUTH_MODE": "disabled"})
        wrong = _cli_submit(cluster, {**client, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * 32})
        right = _cli_submit(cluster, {**client, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    finally:
        cluster.stop()
    assert (without.returncode, without.stdout) == (1, "")
    assert "no authentication token was found" in without.stderr
    assert (wrong.returncode, wrong.stdout) == (1, "")
    assert "Invalid authentication token" in wrong.stderr
    assert right.returncode == 0, right.stderr
    assert right.stdout.startswith("raysubmit_") and "pretrain/tiny" in right.stdout
    assert token not in without.stderr + wrong.stderr + right.stdout + right.stderr


def _cli_submit(cluster: LocalRayCluster, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["tubelet", "submit", "--address", cluster.dashboard_url, "--", "config", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
