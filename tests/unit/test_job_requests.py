"""What `tubelet submit` sends to the Ray Jobs API: the quoted entrypoint and the runtime_env."""

from __future__ import annotations

import shlex

import pytest

from pretrain.distributed.jobs import (
    UPLOAD_EXCLUDES,
    JobRequest,
    JobSubmissionError,
    entrypoint_for,
    runtime_env_for,
)


def test_entrypoint_quotes_each_argument_as_one_word():
    command = ["pretrain", "pretrain/tiny", "trainer.run_name=a b; rm -rf ~", "data.shards=$HOME/x"]
    entrypoint = entrypoint_for(command)
    assert entrypoint == (
        "tubelet pretrain pretrain/tiny 'trainer.run_name=a b; rm -rf ~' 'data.shards=$HOME/x'"
    )
    assert shlex.split(entrypoint) == ["tubelet", *command]


def test_entrypoint_accepts_a_leading_tubelet_and_refuses_nothing():
    assert entrypoint_for(["tubelet", "config", "list"]) == "tubelet config list"
    with pytest.raises(JobSubmissionError, match="nothing to run"):
        entrypoint_for([])


def test_default_and_named_variables_are_forwarded_by_value_from_the_environment():
    environ = {"WANDB_MODE": "offline", "WANDB_PROJECT": "p", "DS_ACCELERATOR": "cpu", "OTHER": "x"}
    env = runtime_env_for(JobRequest(command=("config", "list"), env_names=("DS_ACCELERATOR",)), environ)
    assert env == {"env_vars": {"WANDB_MODE": "offline", "WANDB_PROJECT": "p", "DS_ACCELERATOR": "cpu"}}


@pytest.mark.parametrize(
    "name",
    ["WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "HF_TOKEN", "DB_PASSWORD", "GOOGLE_APPLICATION_CREDENTIALS"],
)
def test_secret_looking_names_are_refused(name):
    with pytest.raises(JobSubmissionError, match=f"--env {name} looks like a secret"):
        runtime_env_for(JobRequest(command=("x",), env_names=(name,)), {name: "s3cr3t"})


def test_an_unset_name_is_refused():
    with pytest.raises(JobSubmissionError, match="--env MISSING_VAR is not set"):
        runtime_env_for(JobRequest(command=("x",), env_names=("MISSING_VAR",)), {})


def test_working_dir_is_uploaded_without_environments_history_and_outputs(tmp_path):
    env = runtime_env_for(JobRequest(command=("x",), working_dir=tmp_path), {})
    assert env["working_dir"] == str(tmp_path.resolve())
    assert {".git", ".venv", "runs", "wandb", "*.ckpt"} <= set(env["excludes"])
    assert env["excludes"] == list(UPLOAD_EXCLUDES)
    with pytest.raises(JobSubmissionError, match="is not a directory"):
        runtime_env_for(JobRequest(command=("x",), working_dir=tmp_path / "missing"), {})
