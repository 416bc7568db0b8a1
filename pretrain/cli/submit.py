"""`tubelet submit`: run a tubelet command on a Ray cluster through the Ray Jobs API.

    tubelet submit --address http://HEAD:8265 [--working-dir .] [--no-wait] -- pretrain RECIPE k=v ...
    tubelet submit --address http://HEAD:8265 --stop JOB_ID

Prints the job id, follows the job's logs unless --no-wait, and exits with the job's outcome
(0 succeeded, 1 failed or stopped).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pretrain.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="run a tubelet command on a Ray cluster (Ray Jobs API)",
        description="Submit `tubelet COMMAND...` (everything after --) to a Ray cluster, print the "
        "job id, follow its logs and exit with its status; or stop a job with --stop.",
    )
    address = os.environ.get("RAY_API_SERVER_ADDRESS")
    parser.add_argument(
        "--address",
        default=address,
        required=address is None,
        help="Jobs API address, e.g. http://127.0.0.1:8265 through `ray dashboard` "
        "or kubectl port-forward (default: $RAY_API_SERVER_ADDRESS)",
    )
    parser.add_argument(
        "--working-dir",
        type=Path,
        default=None,
        help="upload this checkout and run its code (.git, .venv, runs excluded)",
    )
    parser.add_argument(
        "--env",
        dest="env_names",
        action="append",
        default=[],
        metavar="NAME",
        help="forward environment variable NAME (its value is never printed); "
        "WANDB_MODE/PROJECT/ENTITY are forwarded when set",
    )
    parser.add_argument("--no-wait", action="store_true", help="print the job id and return")
    parser.add_argument(
        "--entrypoint-num-cpus", type=float, default=None, help="CPUs reserved for the driver process"
    )
    parser.add_argument(
        "--entrypoint-num-gpus", type=float, default=None, help="GPUs reserved for the driver process"
    )
    parser.add_argument("--stop", metavar="JOB_ID", default=None, help="stop this job and exit")
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        help="after --: the tubelet command to run, e.g. pretrain pretrain/tiny",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.stop is not None:
        if command:
            raise UserError("give either --stop JOB_ID or a command after --, not both")
        return _stop(address=args.address, job_id=args.stop)
    return _submit(
        address=args.address,
        command=tuple(command),
        working_dir=args.working_dir,
        env_names=tuple(args.env_names),
        no_wait=args.no_wait,
        num_cpus=args.entrypoint_num_cpus,
        num_gpus=args.entrypoint_num_gpus,
    )


def _submit(
    *,
    address: str,
    command: tuple[str, ...],
    working_dir: Path | None,
    env_names: tuple[str, ...],
    no_wait: bool,
    num_cpus: float | None,
    num_gpus: float | None,
) -> int:
    from pretrain.distributed import jobs

    request = jobs.JobRequest(
        command=command,
        working_dir=working_dir,
        env_names=env_names,
        entrypoint_num_cpus=num_cpus,
        entrypoint_num_gpus=num_gpus,
    )
    job_id = jobs.submit(address, request)
    print(job_id, flush=True)
    if no_wait:
        print(
            f"tubelet: follow with `ray job logs --address {address} --follow {job_id}`; "
            f"stop with `tubelet submit --address {address} --stop {job_id}`",
            file=sys.stderr,
        )
        return 0
    status = jobs.follow(address, job_id, write=_write_stdout)
    print(f"tubelet: job {job_id} {status.value}", file=sys.stderr)
    return jobs.exit_code_for(status)


def _stop(*, address: str, job_id: str, timeout_s: float = 30) -> int:
    from pretrain.distributed import jobs

    if not jobs.stop(address, job_id):
        print(f"tubelet: job {job_id} had already finished ({jobs.status_of(address, job_id).value})")
        return 0
    status = jobs.wait(address, job_id, timeout_s=timeout_s)
    print(f"tubelet: job {job_id} {status.value}")
    if status not in jobs.FINISHED:
        # Ray delivers the stop request once the job's supervisor is scheduled.
        print(
            f"tubelet: stop requested, but the job is still {status.value} after {timeout_s:.0f} s",
            file=sys.stderr,
        )
        return 1
    return 0


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()
