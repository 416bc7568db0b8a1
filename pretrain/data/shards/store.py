"""Shard output on any fsspec filesystem (local directory, file://, memory://, s3://, gs://).

Every file appears atomically: it is written under a `.partial-<id>` name and then renamed, so a
reader (or a resumed build) never sees a partial shard, part record or manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from typing import BinaryIO

import fsspec

PARTIAL_MARK = ".partial-"


class ShardStore:
    def __init__(self, url: str) -> None:
        # Absolute local paths: Ray and pool workers run in other working directories.
        self.url = url if "://" in url else os.path.abspath(os.path.expanduser(url))
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.root = self.root.rstrip("/") or "/"

    @property
    def is_process_local(self) -> bool:
        """In-memory filesystems live inside one process: other workers cannot see them."""
        return "memory" in _protocols(self.fs)

    @property
    def is_local(self) -> bool:
        return "file" in _protocols(self.fs)

    def path(self, name: str) -> str:
        return posixpath.join(self.root, name)

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path(name))

    def size(self, name: str) -> int:
        return int(self.fs.size(self.path(name)))

    def makedirs(self, name: str = "") -> None:
        self.fs.makedirs(self.path(name) if name else self.root, exist_ok=True)

    @contextlib.contextmanager
    def open_atomic(self, name: str) -> Iterator[BinaryIO]:
        """Write to a unique partial name; rename onto `name` only if the block succeeds."""
        partial = self.path(f"{name}{PARTIAL_MARK}{uuid.uuid4().hex[:12]}")
        try:
            with self.fs.open(partial, "wb") as handle:
                yield handle
                if self.is_local:  # on disk before the rename, so a crash cannot expose a hole
                    handle.flush()
                    os.fsync(handle.fileno())
            self.fs.mv(partial, self.path(name))
        finally:
            if self.fs.exists(partial):
                self.fs.rm(partial)

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.open_atomic(name) as handle:
            handle.write(data)

    def write_json(self, name: str, obj: object) -> None:
        self.write_bytes(name, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8"))

    def read_json(self, name: str) -> object | None:
        """The parsed file, or None if missing or unreadable (an interrupted earlier build)."""
        try:
            with self.fs.open(self.path(name), "rb") as handle:
                return json.loads(handle.read().decode("utf-8"))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return None

    def remove(self, name: str) -> None:
        if self.exists(name):
            self.fs.rm(self.path(name))

    def remove_partials(self, folder: str = "") -> int:
        """Delete leftovers of killed writes (one build per output directory at a time)."""
        base = self.path(folder) if folder else self.root
        if not self.fs.exists(base):
            return 0
        leftovers = [p for p in self.fs.ls(base, detail=False) if PARTIAL_MARK in posixpath.basename(p)]
        for path in leftovers:
            self.fs.rm(path)
        return len(leftovers)


def _protocols(fs) -> tuple[str, ...]:
    protocol = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


class HashingFile(io.RawIOBase):
    """Pass-through file that hashes and counts every byte written to or read from `target`
    (shards are checksummed on their way out, and verified on their way in, in one pass)."""

    def __init__(self, target) -> None:
        self.target, self.sha256, self.bytes = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        self.target.write(data)
        return len(data)

    def readinto(self, buffer) -> int:
        data = self.target.read(len(buffer))
        buffer[: len(data)] = data
        self.sha256.update(data)
        self.bytes += len(data)
        return len(data)

    def drain(self) -> None:
        """Read (and hash) whatever the consumer left unread."""
        while self.readinto(bytearray(1 << 20)):
            pass
