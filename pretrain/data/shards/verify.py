"""`tubelet shards verify`: every shard matches the manifest (count, size, sha256), every sample's
key matches its path, and every video decodes completely."""

from __future__ import annotations

import io
import json
import logging
import tarfile
from dataclasses import dataclass, field

import fsspec

from pretrain.data.shards.local_pool import run_in_processes
from pretrain.data.shards.manifest import ShardRecord, read_manifest
from pretrain.data.shards.spans import sample_key
from pretrain.data.shards.store import HashingFile
from pretrain.data.video.probe import ProbeError, probe_video

log = logging.getLogger(__name__)


@dataclass
class VerifyReport:
    location: str
    shards_checked: int = 0
    samples_checked: int = 0
    failures: list[str] = field(default_factory=list)
    bad_shards: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def _group_samples(tar: tarfile.TarFile) -> dict[str, dict]:
    """key -> {extension: bytes} in tar order."""
    samples: dict[str, dict] = {}
    for member in tar:
        key, _, ext = member.name.partition(".")
        samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def _check_sample(shard: str, key: str, members: dict, decode: bool) -> list[str]:
    where = f"{shard}: sample {key}"
    if "json" not in members or len(members) != 2:
        return [f"{where}: expected one video and one .json member, found {sorted(members)}"]
    try:
        meta = json.loads(members["json"])
    except ValueError as error:
        return [f"{where}: .json member is not valid JSON ({error})"]
    problems = []
    if sample_key(meta) != key:
        problems.append(f"{where}: key does not match its path {meta.get('path')!r}")
    video = members.get(meta.get("ext", ""))
    if video is None:
        return problems + [f"{where}: no .{meta.get('ext')} member"]
    if decode:
        try:
            info = probe_video(video, "full")
            if info.num_frames != meta.get("num_frames"):
                problems.append(
                    f"{where}: decodes {info.num_frames} frames, json says {meta.get('num_frames')}"
                )
        except ProbeError as error:
            problems.append(f"{where}: does not decode ({error})")
    return problems


@dataclass(frozen=True)
class _ShardCheck:
    name: str
    keys: list[str]
    failures: list[str]


def _verify_shard(shard: ShardRecord, options: tuple[str, bool]) -> _ShardCheck:
    """Size, sha256, count and per-sample checks of one shard (runs in a worker process)."""
    location, decode = options
    fs, root = fsspec.core.url_to_fs(location)
    path = f"{root.rstrip('/')}/{shard.name}"
    if not fs.exists(path):
        return _ShardCheck(shard.name, [], [f"{shard.name}: missing"])
    failures: list[str] = []
    try:
        with fs.open(path, "rb") as handle:
            hashing = HashingFile(handle)
            with tarfile.open(fileobj=io.BufferedReader(hashing), mode="r|") as tar:
                samples = _group_samples(tar)
            hashing.drain()
    except (tarfile.TarError, OSError) as error:  # truncated, corrupt header: this shard is bad
        return _ShardCheck(shard.name, [], [f"{shard.name}: unreadable tar ({error})"])
    if hashing.bytes != shard.bytes:
        failures.append(f"{shard.name}: {hashing.bytes} bytes, manifest says {shard.bytes}")
    if hashing.sha256.hexdigest() != shard.sha256:
        failures.append(f"{shard.name}: sha256 differs from the manifest")
    if len(samples) != shard.count:
        failures.append(f"{shard.name}: {len(samples)} samples, manifest says {shard.count}")
    for key, members in samples.items():
        failures.extend(_check_sample(shard.name, key, members, decode))
    return _ShardCheck(shard.name, list(samples), failures)


def verify_shards(path_or_url: str, decode: bool = True, workers: int = 1) -> VerifyReport:
    """Check every shard listed in the manifest (in `workers` processes); failures are collected,
    not raised."""
    manifest = read_manifest(path_or_url)
    options = (manifest.location, decode)
    in_memory = manifest.location.startswith("memory://")
    if workers > 1 and not in_memory:
        checks = list(run_in_processes(_verify_shard, manifest.shards, options, workers))
    else:
        checks = [_verify_shard(shard, options) for shard in manifest.shards]
    order = {shard.name: index for index, shard in enumerate(manifest.shards)}
    report = VerifyReport(manifest.location, shards_checked=len(checks))
    seen: set[str] = set()
    for check in sorted(checks, key=lambda c: order[c.name]):
        report.samples_checked += len(check.keys)
        report.failures.extend(check.failures)
        if check.failures:
            report.bad_shards.append(check.name)
        for key in check.keys:
            if key in seen:
                report.failures.append(f"{check.name}: sample {key} also appears in an earlier shard")
            seen.add(key)
    total = manifest.totals.get("samples")
    if total is not None and total != report.samples_checked and not report.failures:
        report.failures.append(f"manifest totals say {total} samples, shards hold {report.samples_checked}")
    return report
