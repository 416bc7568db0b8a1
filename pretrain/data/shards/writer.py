"""Write one shard: probe (or re-encode) each video of its plan, stream samples into a tar under a
partial name, rename it, then write the shard's part record (what the manifest is assembled from).

`write_shard` is the unit of parallel work: it runs in-process, in a local worker process or as a
Ray task, and gives identical bytes in each (fixed tar metadata, sorted JSON).
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import av

from pretrain.data.shards.encode import ReencodeOptions, reencode
from pretrain.data.shards.errors import StrictModeError
from pretrain.data.shards.listing import VideoEntry, regular_file_problem
from pretrain.data.shards.spans import span_fields
from pretrain.data.shards.store import HashingFile, ShardStore
from pretrain.data.video.probe import ProbeError, VideoInfo, probe_video

log = logging.getLogger(__name__)

PARTS_DIR = "_build"
TAR_MTIME = 0  # fixed member metadata: the same inputs give byte-identical shards


@dataclass(frozen=True)
class ShardPlan:
    index: int
    entries: tuple[VideoEntry, ...]
    fingerprint: str
    """Hash of the build options and of each input (path, size, mtime, label, splits)."""

    @property
    def name(self) -> str:
        return f"shard-{self.index:06d}.tar"

    @property
    def part_name(self) -> str:
        return f"{PARTS_DIR}/shard-{self.index:06d}.json"


@dataclass(frozen=True)
class ShardTaskConfig:
    """Everything a worker needs besides the plan (picklable, small)."""

    output: str
    dataset: str
    probe: str = "full"
    reencode: ReencodeOptions | None = None
    strict: bool = False


@dataclass
class ShardResult:
    name: str
    index: int
    count: int
    bytes: int
    sha256: str
    input_bytes: int
    samples: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    resumed: bool = False

    def record(self, fingerprint: str) -> dict:
        fields = {k: v for k, v in self.__dict__.items() if k != "resumed"}
        return {**fields, "fingerprint": fingerprint}

    @classmethod
    def from_record(cls, record: dict) -> ShardResult:
        fields = {k: v for k, v in record.items() if k != "fingerprint"}
        return cls(**fields, resumed=True)


class _NothingWritten(Exception):
    """Every video of the shard was unusable."""


def sample_json(
    entry: VideoEntry, info: VideoInfo, dataset: str, ext: str, original: VideoInfo | None = None
) -> dict:
    """The `.json` member of a sample (see the contract in manifest.py)."""
    meta = {
        "path": entry.path,
        "source": dataset,
        "split": entry.split,
        "splits": dict(entry.splits),
        "ext": ext,
        **info.as_dict(),
    }
    if entry.label is not None:
        meta["label"] = entry.label
    if entry.class_name is not None:
        meta["class"] = entry.class_name
    if original is not None:
        meta["original"] = original.as_dict()
    return meta


def prepare_video(entry: VideoEntry, config: ShardTaskConfig) -> tuple[bytes | Path, dict]:
    """(video bytes, or the file itself when it is stored as it is; sample json); ProbeError if the
    input is unusable. Files are probed and re-encoded from disk, never read whole into memory."""
    if entry.span is not None:  # a segment, shot or annotated span: cut from its parent
        from pretrain.data.shards.cutting import cut_span

        data, info, ext, original = cut_span(entry.file, entry.span, config.probe, config.reencode)
        return data, {
            **sample_json(entry, info, config.dataset, ext, original),
            **span_fields(entry.span, entry.path),
        }
    file = Path(entry.file)
    problem = regular_file_problem(file)  # replaced by a FIFO or /dev/zero link since listing
    if problem:
        raise ProbeError(problem)
    if file.stat().st_size == 0:
        raise ProbeError("zero-byte file")
    if config.reencode is None:
        info = probe_video(str(file), config.probe)
        ext = Path(entry.path).suffix.lower().lstrip(".") or "video"
        return file, sample_json(entry, info, config.dataset, ext)
    original = probe_video(str(file), "fast")
    encoded, info = reencode(str(file), config.reencode)
    return encoded, sample_json(entry, info, config.dataset, "mp4", original)


def _reason(error: Exception) -> str:
    if isinstance(error, ProbeError):
        return str(error)
    if isinstance(error, av.FFmpegError):
        return f"re-encode failed ({error})"
    if isinstance(error, UnicodeError):
        return "file name is not valid UTF-8"
    return f"unreadable ({error})"


def _error_row(entry: VideoEntry, reason: str) -> dict:
    row = {"kind": "video", "path": entry.path, "file": entry.file, "reason": reason}
    if entry.span is not None:  # a broken part of a long video skips only its span
        row.update(kind=entry.span.kind, start=entry.span.start, end=entry.span.end)
    return row


def _add_member(tar: tarfile.TarFile, name: str, payload: bytes | Path) -> None:
    """A member from bytes, or copied from a file in blocks (its size as of opening it)."""
    member = tarfile.TarInfo(name)
    member.mtime, member.mode = TAR_MTIME, 0o444
    member.uname = member.gname = "tubelet"
    if isinstance(payload, Path):
        with open(payload, "rb") as source:
            member.size = os.fstat(source.fileno()).st_size
            tar.addfile(member, source)
        return
    member.size = len(payload)
    tar.addfile(member, io.BytesIO(payload))


def _write_samples(handle, plan: ShardPlan, config: ShardTaskConfig, result: ShardResult) -> HashingFile:
    hashing = HashingFile(handle)
    with tarfile.open(fileobj=hashing, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for entry in plan.entries:
            try:
                key = entry.key  # UnicodeError for a name that is not valid UTF-8
                payload, meta = prepare_video(entry, config)
            except (ProbeError, OSError, av.FFmpegError, UnicodeError) as error:
                reason = _reason(error)
                if config.strict:
                    raise StrictModeError(f"{entry.file}: {reason} (--strict)") from None
                span = f" [{entry.span.start:.3f}-{entry.span.end:.3f} s]" if entry.span else ""
                log.warning("skipping %s%s: %s", entry.file, span, reason)
                result.errors.append(_error_row(entry, reason))
                continue
            _add_member(tar, f"{key}.{meta['ext']}", payload)
            _add_member(tar, f"{key}.json", json.dumps(meta, sort_keys=True).encode("utf-8"))
            result.samples.append({"key": key, **meta})
    return hashing


def write_shard(plan: ShardPlan, config: ShardTaskConfig) -> ShardResult:
    """Build one shard and its part record; a shard with no usable video writes no tar."""
    started = time.perf_counter()
    store = ShardStore(config.output)
    result = ShardResult(plan.name, plan.index, 0, 0, "", sum(e.size for e in plan.entries))
    try:
        with store.open_atomic(plan.name) as handle:
            hashing = _write_samples(handle, plan, config, result)
            if not result.samples:
                raise _NothingWritten  # discard the partial: no empty shard becomes visible
        result.bytes, result.sha256 = hashing.bytes, hashing.sha256.hexdigest()
    except _NothingWritten:
        pass
    result.count = len(result.samples)
    result.seconds = round(time.perf_counter() - started, 3)
    store.write_json(plan.part_name, result.record(plan.fingerprint))
    return result


def load_finished(store: ShardStore, plan: ShardPlan) -> ShardResult | None:
    """The shard's result if an earlier run finished it with the same plan, else None."""
    record = store.read_json(plan.part_name)
    if not isinstance(record, dict) or record.get("fingerprint") != plan.fingerprint:
        return None
    result = ShardResult.from_record(record)
    if result.count and (not store.exists(plan.name) or store.size(plan.name) != result.bytes):
        return None
    return result
