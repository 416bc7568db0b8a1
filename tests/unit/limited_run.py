"""Run `tubelet ...` in a child process under a hard memory cap and a time limit, so a test can
assert that a hostile input is refused (or skipped) in bounded memory instead of hoping."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

GIB = 1 << 30
REPO = Path(__file__).resolve().parents[2]
MAIN = "import sys; from pretrain.cli import main; sys.exit(main(sys.argv[1:]))"


def run_tubelet(
    args: list[str],
    memory_bytes: int = 3 * GIB,
    timeout: float = 120,
    cwd: Path | None = None,
    file_bytes: int | None = None,
) -> subprocess.CompletedProcess:
    """`tubelet ARGS` with RLIMIT_AS = memory_bytes (address space: torch alone maps
    about 0.8 GiB); raises subprocess.TimeoutExpired when it runs past `timeout` seconds.
    `file_bytes`: no file may grow past it (a full disk: writes fail with EFBIG)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        if file_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", MAIN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=cap,
        env=env,
        cwd=cwd,
    )


@contextlib.contextmanager
def another_writer(folder: Path) -> Iterator[subprocess.Popen]:
    """A second process holding `folder`'s output lock (as a concurrent `tubelet` run would)."""
    code = (
        "import sys, time; sys.argv = ['tubelet', 'shards', 'build', 'folder', 'in', 'out']\n"
        "from pretrain.data.shards.output_lock import output_lock\n"
        f"with output_lock({str(folder)!r}):\n    print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()
