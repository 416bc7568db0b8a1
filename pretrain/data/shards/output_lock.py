"""One writer per output folder: `tubelet shards build` and `tubelet features` hold an exclusive
`flock` on a lock file inside the folder while they write it.

A second run into the same folder would otherwise mix two builds (or two models' features) under one
manifest, or delete the first run's partial files. The lock file names its holder (pid, host,
command); the kernel drops the lock when the holder exits, even by SIGKILL, so a stale lock file
never blocks a rerun. Local folders only: object stores have no flock (fsspec URLs are not locked).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from pretrain.errors import UserError

LOCK_NAME = ".tubelet.lock"
HOLDER_CHARS = 200
"""At most this much of the holder line is quoted back (the file is ours, but it is still a file)."""


class OutputLocked(UserError):
    """Another run is writing the same output folder."""


def _holder_line() -> str:
    command = shlex.join(["tubelet", *sys.argv[1:]]) if sys.argv else "python"
    return f"pid {os.getpid()} on {socket.gethostname()}: {command}"


def _quoted_holder(handle) -> str:
    handle.seek(0)
    text = handle.read(HOLDER_CHARS * 4).decode("utf-8", "replace").strip().splitlines()
    line = text[0] if text else "unknown"
    return line[:HOLDER_CHARS].encode("ascii", "backslashreplace").decode("ascii")


@contextlib.contextmanager
def output_lock(folder: str | Path | None) -> Iterator[None]:
    """Hold the folder's lock for the block (creating the folder); None: nothing to lock."""
    if folder is None:
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputLocked(
                f"{folder} is being written by another run ({_quoted_holder(handle)}); "
                "wait for it to finish or choose another output folder"
            ) from None
        handle.truncate(0)
        handle.write((_holder_line() + "\n").encode("utf-8", "backslashreplace"))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
