"""`tubelet shards verify`: every shard matches the manifest (count, size, sha256), every sample's
key matches its path, and every video decodes completely."""

from __future__ import annotations

import io
import json
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
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


SPOOL_BYTES = 8 << 20
"""A sample member up to this size is held in memory; a bigger one spills to a temporary file."""
JSON_BYTES = 1 << 20


def _iter_samples(tar: tarfile.TarFile) -> Iterator[tuple[str, dict]]:
    """(key, {extension: seekable file}) per sample in tar order, one sample at a time: memory is
    bounded whatever the size of a video (PyAV reads the spooled file)."""
    key, members = None, {}
    for member in tar:
        name_key, _, ext = member.name.partition(".")
        if name_key != key and members:
            yield key, members
            members = {}
        key, source = name_key, tar.extractfile(member)
        spool = tempfile.SpooledTemporaryFile(SPOOL_BYTES)  # noqa: SIM115  (closed once the sample is checked)
        if source is not None:
            shutil.copyfileobj(source, spool, 1 << 20)
        spool.seek(0)
        members[ext] = spool
    if members:
        yield key, members


def _check_sample(shard: str, key: str, members: dict, decode: bool) -> list[str]:
    where = f"{shard}: sample {key}"
    if "json" not in members or len(members) != 2:
        return [f"{where}: expected one video and one .json member, found {sorted(members)}"]
    text = members["json"].read(JSON_BYTES + 1)
    if len(text) > JSON_BYTES:
        return [f"{where}: .json member is over {JSON_BYTES} bytes"]
    try:
        meta = json.loads(text)
    except ValueError as error:
        return [f"{where}: .json member is not valid JSON ({error})"]
    if not isinstance(meta, dict):
        return [f"{where}: .json member is not a JSON object"]
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


def _check_samples(tar: tarfile.TarFile, shard: str, decode: bool) -> tuple[list[str], list[str]]:
    """(keys, failures) of every sample of a shard read as a stream."""
    keys, failures = [], []
    for key, members in _iter_samples(tar):
        if key in keys:
            failures.append(f"{shard}: sample {key} appears twice")
        else:
            keys.append(key)
        try:
            failures.extend(_check_sample(shard, key, members, decode))
        finally:
            for spool in members.values():
                spool.close()
    return keys, failures


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
                keys, sample_failures = _check_samples(tar, shard.name, decode)
            hashing.drain()
    except (tarfile.TarError, OSError) as error:  # truncated, corrupt header: this shard is bad
        return _ShardCheck(shard.name, [], [f"{shard.name}: unreadable tar ({error})"])
    if hashing.bytes != shard.bytes:
        failures.append(f"{shard.name}: {hashing.bytes} bytes, manifest says {shard.bytes}")
    if hashing.sha256.hexdigest() != shard.sha256:
        failures.append(f"{shard.name}: sha256 differs from the manifest")
    if len(keys) != shard.count:
        failures.append(f"{shard.name}: {len(keys)} samples, manifest says {shard.count}")
    return _ShardCheck(shard.name, keys, failures + sample_failures)


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
