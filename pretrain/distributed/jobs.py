"""Ray Jobs client: submit `tubelet ...` to a Ray cluster, follow its logs, stop it.

The job runs `tubelet <args>` on the cluster's head node. With a working directory, the checkout is
uploaded (without .git, .venv, runs, ...) and Ray puts it first on the job's PYTHONPATH, so the
cluster runs the code and recipes you submitted. Environment variables travel by NAME: their values
are read from this process's environment, never printed or logged, and names that look like secrets
are refused, because a job's runtime_env is readable by anyone who can reach the Jobs API. Provision
secrets on the cluster instead (cluster/README.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ray.job_submission import JobStatus, JobSubmissionClient

from pretrain.errors import UserError

logger = logging.getLogger(__name__)

# Forwarded when set here: they choose how a run logs, and hold no secrets.
DEFAULT_ENV_NAMES = ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_BASE_URL", "WANDB_SILENT")
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", re.IGNORECASE)
# Never uploaded with the working directory (gitignore-style patterns, as Ray expects).
UPLOAD_EXCLUDES = (
    ".git",
    ".venv",
    "venv",
    "runs",
    "wandb",
    "ray_results",
    "__pycache__",
    "*.pyc",
    "*.ckpt",
    "*.pt",
    "*.pth",
    "*.safetensors",
    "*.tar",
    "*.mp4",
    "*.avi",
)
FINISHED = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}


class JobSubmissionError(UserError, ValueError):
    """A submission that cannot be made as asked; the message says what to change."""


@dataclass(frozen=True)
class JobRequest:
    """What to run on the cluster: `tubelet <command...>` with an optional uploaded working dir."""

    command: tuple[str, ...]
    working_dir: Path | None = None
    env_names: tuple[str, ...] = ()
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)


def entrypoint_for(command: Sequence[str]) -> str:
    """The shell command the cluster runs, each argument quoted as one word."""
    if not command:
        raise JobSubmissionError(
            "nothing to run: give the tubelet command after `--`, "
            "e.g. `tubelet submit --address ... -- pretrain pretrain/tiny`"
        )
    if command[0] == "tubelet":
        command = command[1:]
    return shlex.join(["tubelet", *command])


def runtime_env_for(request: JobRequest, environ: Mapping[str, str] = os.environ) -> dict:
    """Ray runtime_env: the uploaded working dir and the forwarded environment variables."""
    runtime_env: dict = {"env_vars": forwarded_env(request.env_names, environ)}
    if request.working_dir is not None:
        directory = Path(request.working_dir)
        if not directory.is_dir():
            raise JobSubmissionError(f"--working-dir {str(directory)!r} is not a directory")
        runtime_env["working_dir"] = str(directory.resolve())
        runtime_env["excludes"] = list(UPLOAD_EXCLUDES)
    return runtime_env


def forwarded_env(names: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    """Values of the default names that are set, plus every explicitly named variable."""
    for name in names:
        if SECRET_NAME.search(name):
            raise JobSubmissionError(
                f"--env {name} looks like a secret; a job's runtime_env is visible to anyone who can "
                "reach the Jobs API, so provision it on the cluster instead (cluster/README.md)"
            )
        if name not in environ:
            raise JobSubmissionError(f"--env {name} is not set in this environment")
    wanted = [n for n in DEFAULT_ENV_NAMES if n in environ] + [n for n in names if n not in DEFAULT_ENV_NAMES]
    return {name: environ[name] for name in wanted}


def connect(address: str) -> JobSubmissionClient:
    """A Jobs API client, or a JobSubmissionError saying the address cannot be reached."""
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise JobSubmissionError(f"cannot reach the Ray Jobs API at {address}: {error}") from None


def submit(address: str, request: JobRequest) -> str:
    """Submit the request; returns the job's submission id."""
    client = connect(address)
    runtime_env = runtime_env_for(request)
    entrypoint = entrypoint_for(request.command)
    job_id = client.submit_job(
        entrypoint=entrypoint,
        runtime_env=runtime_env,
        metadata=dict(request.metadata),
        entrypoint_num_cpus=request.entrypoint_num_cpus,
        entrypoint_num_gpus=request.entrypoint_num_gpus,
    )
    logger.info("submitted %s as %s (forwarding env %s)", entrypoint, job_id, sorted(runtime_env["env_vars"]))
    return job_id


def follow(address: str, job_id: str, write: Callable[[str], object], poll_seconds: float = 0.5) -> JobStatus:
    """Stream the job's logs to `write` until it ends; returns its final status."""
    client = connect(address)
    asyncio.run(_stream_logs(client, job_id, write))
    # The log stream can close a moment before the status turns final.
    status = client.get_job_status(job_id)
    while status not in FINISHED:
        time.sleep(poll_seconds)
        status = client.get_job_status(job_id)
    return status


async def _stream_logs(client: JobSubmissionClient, job_id: str, write: Callable[[str], object]) -> None:
    async for chunk in client.tail_job_logs(job_id):
        write(chunk)


def wait(address: str, job_id: str, timeout_s: float, poll_seconds: float = 0.5) -> JobStatus:
    """Poll until the job has finished or `timeout_s` passed; returns the last status seen."""
    client = connect(address)
    deadline = time.monotonic() + timeout_s
    status = client.get_job_status(job_id)
    while status not in FINISHED and time.monotonic() < deadline:
        time.sleep(poll_seconds)
        status = client.get_job_status(job_id)
    return status


def stop(address: str, job_id: str) -> bool:
    """Ask the cluster to stop the job; False when it had already finished."""
    return _known_job(connect(address).stop_job, job_id)


def status_of(address: str, job_id: str) -> JobStatus:
    return _known_job(connect(address).get_job_status, job_id)


def _known_job(call: Callable, job_id: str):
    try:
        return call(job_id)
    except RuntimeError as error:  # the Jobs API answers 404 for unknown ids
        if "does not exist" in str(error):
            raise JobSubmissionError(f"no job {job_id!r} on this cluster") from None
        raise


def exit_code_for(status: JobStatus) -> int:
    """Process exit code mirroring the job: 0 succeeded, 1 failed or stopped."""
    return 0 if status == JobStatus.SUCCEEDED else 1
