"""Read an offline W&B run's history rows back from its `.wandb` file (what `wandb sync` uploads).

The file is a LevelDB-style log: a 7-byte header (`:W&B`, magic, version), then 32 KiB blocks of
chunks (crc32, length, type: full/first/middle/last), each record a `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, CHUNK_HEADER, FULL, FIRST, LAST = 32768, 7, 1, 2, 4


def records(path: Path) -> list[wandb_internal_pb2.Record]:
    data, offset, out, pending = path.read_bytes(), 7, [], b""
    while offset + CHUNK_HEADER <= len(data):
        room = BLOCK - offset % BLOCK
        if room < CHUNK_HEADER:  # block trailer padding
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + CHUNK_HEADER])
        chunk = data[offset + CHUNK_HEADER : offset + CHUNK_HEADER + length]
        offset += CHUNK_HEADER + length
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            out.append(record)
    return out


def complete_records(path: Path, timeout: float = 60.0) -> list[wandb_internal_pb2.Record]:
    """The records once the run's `exit` record is written (wandb's service writes the file
    asynchronously, after `wandb.finish()` returns)."""
    deadline = time.monotonic() + timeout
    while True:
        found = records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def history(run_dir: Path) -> list[dict]:
    """Every history row of the run's single offline W&B run, values decoded from JSON."""
    (path,) = (run_dir / "wandb").glob("offline-run-*/*.wandb")
    rows = []
    for record in complete_records(path):
        if record.WhichOneof("record_type") == "history":
            row: dict = {}
            for item in record.history.item:  # media come as nested keys: ("recon/grid", "path")
                keys = [item.key] if item.key else list(item.nested_key)
                target = row
                for key in keys[:-1]:
                    target = target.setdefault(key, {})
                target[keys[-1]] = json.loads(item.value_json)
            rows.append(row)
    return rows
