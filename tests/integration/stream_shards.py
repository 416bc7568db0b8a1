"""Real shards for the stream tests: a small UCF101-layout corpus of encoded AVIs, built by
`build_shards`, plus helpers to damage a shard the way disks and networks do."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

from pretrain.config import RunConfig, load_config
from pretrain.data.generated.corpora import square_frames, write_ucf101_tree
from pretrain.data.shards import BuildOptions, build_shards, read_manifest
from pretrain.data.shards.keys import path_for_key

# 3 classes x groups (1, 8, 15, 22) = 12 videos; split 1: group 1 tests (3), the rest train (9).
GROUPS = (1, 8, 15, 22)


def build_ucf_shards(root: Path, frames: int = 20, shard_mb: float = 0.05) -> Path:
    """12 videos of `frames` frames (64x80) in 3-4 shards; returns the shard directory."""
    write_ucf101_tree(root / "raw", classes=3, groups=GROUPS, frames=square_frames(frames, num_classes=3))
    build_shards("ucf101", str(root / "raw"), str(root / "shards"), BuildOptions(shard_size_mb=shard_mb))
    return root / "shards"


def stream_config(shards: Path, *overrides: str, stage: str = "pretrain") -> RunConfig:
    """The tiny recipe (8 frames, stride 2, 64 px, tube masks 0.75) reading `shards`."""
    return load_config("pretrain/tiny", [f"stage={stage}", f"data.shards={shards}", *overrides])


def expected_keys(shards: Path, accepts: Callable[[dict], bool] = lambda meta: True) -> dict[str, dict]:
    """key -> json (+ "shard": its tar) of every sample the predicate accepts, read from the tars."""
    found = {}
    for shard in sorted(Path(shards).glob("shard-*.tar")):
        with tarfile.open(shard) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".json"):
                    meta = json.loads(tar.extractfile(member).read())
                    meta["shard"] = shard.name
                    if accepts(meta):
                        found[member.name[: -len(".json")]] = meta
    return found


def class_of_key(key: str) -> str:
    return path_for_key(key).split("/")[0]


def rewrite_member(shard: Path, key: str, new_bytes: Callable[[bytes], bytes]) -> None:
    """Replace the video bytes of sample `key` in `shard` (tar rewritten, other members kept)."""
    members = []
    with tarfile.open(shard) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member).read()
            if member.name.startswith(key + ".") and not member.name.endswith(".json"):
                data = new_bytes(data)
            members.append((member.name, data))
    with tarfile.open(shard, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def first_key(shard: Path, prefix: str | None = None) -> str:
    with tarfile.open(shard) as tar:
        names = [m.name[: -len(".json")] for m in tar.getmembers() if m.name.endswith(".json")]
    return next(n for n in names if prefix is None or n.startswith(prefix))


def manifest_count(shards: Path) -> int:
    return read_manifest(str(shards)).num_samples
