"""`build_shards`: list a corpus, plan shards, write the missing ones in parallel, then the manifest.

Resuming: each shard's plan has a fingerprint (build options + each input's path, size, mtime,
label and splits). A shard whose part record carries the same fingerprint and whose tar has the
recorded size is kept; every other shard is (re)written. The manifest is written last, so a killed
build leaves no manifest and a rerun completes it with every input exactly once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from dataclasses import fields as dataclass_fields
from typing import Protocol

from pretrain import __version__
from pretrain.data.shards.cards import check_expected_counts
from pretrain.data.shards.encode import TRAIN_STRIDE, EncodeOptions, ReencodeOptions, training_encoding
from pretrain.data.shards.errors import ShardsError, StrictModeError
from pretrain.data.shards.held_out import METHOD as HELD_OUT_METHOD
from pretrain.data.shards.held_out import with_held_out_split
from pretrain.data.shards.listing import Listing, VideoEntry
from pretrain.data.shards.local_pool import run_units
from pretrain.data.shards.manifest import ERRORS_NAME, MANIFEST_NAME, assemble_manifest
from pretrain.data.shards.output_lock import output_lock
from pretrain.data.shards.segments import SegmentOptions, segment_listing
from pretrain.data.shards.sources import list_source
from pretrain.data.shards.spans import TAILS
from pretrain.data.shards.store import ShardStore
from pretrain.data.shards.writer import (
    PARTS_DIR,
    ShardPlan,
    ShardResult,
    ShardTaskConfig,
    load_finished,
    write_shard,
)
from pretrain.data.video.probe import PROBE_MODES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions(EncodeOptions):
    """How `build_shards` builds: the one owner of every build option and its default.

    `tubelet shards build` derives one flag per field (`--shard-size-mb` for `shard_size_mb`; a
    bool is a switch), its type and default from the annotation, and its help from the docstring
    below the field (cli/shards.py). A new option is a new field here with a docstring; check its
    value in `__post_init__`, and add it to `content_fields` if it changes the shards' bytes. The
    re-encoding options (`resize_short`, `fps`, `crf`, `preset`, `gop_seconds`) and their checks
    are `EncodeOptions`' fields, inherited.
    """

    shard_size_mb: float = 256.0
    """Target shard size in MB (10^6 bytes) of input bytes; a shard holds at least one video."""
    workers: int = 1
    """Local worker processes (with --ray / a `runner`: the shard tasks in flight at once)."""
    reencode: bool = False
    """Re-encode to H.264 MP4 even without resize/fps (implied by either)."""
    train_encoding: bool = False
    """Re-encode for pretraining, cheap to decode: every --train-stride-th frame, short side 256
    (or --resize-short), a keyframe every 8 stored frames, no B-frames, x264 tune fastdecode
    (no CABAC, no deblocking). data.stride keeps counting
    source frames and must be a multiple of the stored stride (README, "The training encoding")."""
    train_stride: int | None = None
    """With --train-encoding: keep every N-th source frame (default 4, the recipes' data.stride)."""
    probe: str = "full"
    """full: decode every frame before writing; fast: demux + first frame."""
    strict: bool = False
    """Bad videos, bad directory entries and split-file problems are fatal."""
    labels_from_folders: bool = False
    """folder: label each video by its first-level subfolder."""
    seed: int = 0
    """Seed of the deterministic shuffle that mixes classes across shards."""
    test_fraction: float = 0.0
    """folder: hold out this fraction of the videos as split 1 `test` (the rest `train`), chosen by
    a hash of each path, per class when labelled (datasets/folder.md)."""
    name: str | None = None
    """Dataset name recorded in the manifest and samples (default: the source; e.g. kinetics400)."""
    annotations: tuple[str, ...] = ()
    """kinetics: official CSV (label,youtube_id,time_start,time_end,split), matching the mirror's
    <id>_<start:06d>_<end:06d>.* clips (kept whole) or full-length <id>.* videos; annotations: CSV
    with video,start,end,label[,split]. Spans of full-length videos are cut exactly (re-encoded).
    Repeat for several lists; missing videos are listed, not fatal."""
    segment_seconds: float | None = None
    """Cut each video into samples of about S seconds. Without --reencode the packets are copied and
    every boundary moves to the NEAREST KEYFRAME (segment lengths follow the keyframe grid); with
    --reencode the cuts are exact."""
    min_segment_seconds: float | None = None
    """Pieces shorter than this (the tail, short shots) are merged into a neighbour or dropped, see
    --tail (default: half of --segment-seconds, or 1 s with --scenes alone)."""
    tail: str = "merge"
    """What happens to pieces shorter than --min-segment-seconds: merge or drop."""
    scenes: bool = False
    """Cut at shot changes (with --segment-seconds: long shots are cut further)."""
    scene_threshold: float = 8.0
    """Smallest shot-change score: mean absolute difference of consecutive frames' Y, U, V on a
    64-pixel-wide grid, 0-255 (a cut must also score 3x its neighbours)."""

    def __post_init__(self) -> None:
        infinite = [
            f"{k}={v}" for k, v in vars(self).items() if isinstance(v, float) and not math.isfinite(v)
        ]
        if infinite:  # nan passes every `<= 0` check below
            raise ShardsError(f"{', '.join(infinite)}: must be a finite number")
        super().__post_init__()
        checks = [
            (self.shard_size_mb > 0, f"shard_size_mb={self.shard_size_mb} must be > 0"),
            (self.workers >= 1, f"workers={self.workers} must be >= 1"),
            (
                self.train_stride is None or self.train_stride >= 1,
                f"train_stride={self.train_stride} must be >= 1",
            ),
            (
                self.train_encoding or self.train_stride is None,
                f"train_stride={self.train_stride} needs --train-encoding",
            ),
            (
                not (self.train_encoding and self.fps),
                f"fps={self.fps} and --train-encoding: the training encoding sets the rate "
                "(source fps / --train-stride); drop one",
            ),
            (0 <= self.test_fraction < 1, f"test_fraction={self.test_fraction} must be in [0, 1)"),
            (self.probe in PROBE_MODES, f"probe={self.probe!r}: choose one of {PROBE_MODES}"),
            (self.tail in TAILS, f"tail={self.tail!r}: choose one of {', '.join(TAILS)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ShardsError(message)
        self.segment_options()  # its own checks

    def segment_options(self) -> SegmentOptions | None:
        """How videos are cut into segments / shots; None: one sample per file."""
        if self.segment_seconds is None and not self.scenes:
            return None
        return SegmentOptions(
            self.segment_seconds,
            self.min_segment_seconds,
            self.tail,
            self.scenes,
            exact=self.reencode_options() is not None,
            scene_threshold=self.scene_threshold,
        )

    def reencode_options(self) -> ReencodeOptions | None:
        if self.train_encoding:
            return training_encoding(
                self.train_stride or TRAIN_STRIDE, self.resize_short, self.crf, self.preset
            )
        if not (self.reencode or self.resize_short or self.fps):
            return None
        return ReencodeOptions(
            **{option.name: getattr(self, option.name) for option in dataclass_fields(EncodeOptions)}
        )

    def content_fields(self) -> dict:
        """Options that change shard bytes (parallelism and strictness do not)."""
        reencode = self.reencode_options()
        fields = {
            "reencode": reencode.fingerprint_fields() if reencode else None,
            "probe": self.probe,
            "shard_size_mb": self.shard_size_mb,
            "seed": self.seed,
        }
        if self.test_fraction:  # only when set: earlier builds keep their fingerprints
            fields["held_out"] = {"test_fraction": self.test_fraction, "method": HELD_OUT_METHOD}
        segments = self.segment_options()
        if segments is not None:  # only when set, like held_out
            fields["segments"] = asdict(segments)
        if self.annotations:
            fields["annotations"] = list(self.annotations)
        if self.train_encoding:  # what loaders read (`Manifest.stored_stride`)
            fields["stored"] = {"stride": reencode.stride, "short_side": reencode.resize_short}
        return fields


@dataclass
class BuildSummary:
    output: str
    dataset: str
    videos: int
    skipped: int
    shards: int
    bytes: int
    hours: float
    seconds: float
    resumed_shards: int
    split_problems: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    segments: int = 0
    """Samples that are spans of a longer video (0 for whole-file builds)."""
    source_videos: int = 0

    @property
    def videos_per_second(self) -> float:
        return self.videos / self.seconds if self.seconds else 0.0


ShardTask = Callable[[ShardPlan, ShardTaskConfig], ShardResult]
ShardRunner = Callable[[ShardTask, list[ShardPlan], ShardTaskConfig], Iterator[ShardResult]]
"""Runs the per-shard task elsewhere and yields its results as they finish: how a distributed build
(`pretrain.distributed.shard_tasks.ray_shard_runner`) wraps this builder from outside."""


class BuildProgress(Protocol):
    def start(self, total_videos: int, total_shards: int) -> None: ...
    def advance(self, result: ShardResult) -> None: ...


def plan_shards(entries: Iterable[VideoEntry], options: BuildOptions, dataset: str) -> list[ShardPlan]:
    """Shuffle (seeded) so every shard mixes classes, then cut by cumulative input size."""
    ordered = sorted(entries, key=lambda e: e.path)
    random.Random(options.seed).shuffle(ordered)
    limit = options.shard_size_mb * 1e6
    groups: list[list[VideoEntry]] = [[]]
    size = 0
    for entry in ordered:
        if groups[-1] and size + entry.size > limit:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += entry.size
    content = json.dumps({"dataset": dataset, **options.content_fields()}, sort_keys=True)
    return [
        ShardPlan(i, tuple(group), _fingerprint(content, group)) for i, group in enumerate(groups) if group
    ]


def _fingerprint(content: str, entries: list[VideoEntry]) -> str:
    digest = hashlib.sha256(content.encode())
    for entry in entries:
        mtime = _mtime_ns(entry.file)
        identity = [entry.path, entry.size, mtime, entry.label, entry.splits]
        if entry.span is not None:
            identity.append(asdict(entry.span))
        digest.update(json.dumps(identity, sort_keys=True).encode())
    return digest.hexdigest()


def _mtime_ns(path: str) -> int:
    import os

    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _report_problems(listing: Listing, strict: bool) -> None:
    if strict and listing.skipped:
        bad = listing.skipped[0]
        raise StrictModeError(f"{bad.file}: {bad.reason} (--strict)")
    if not listing.problems:
        return
    lines = [problem.describe() for problem in listing.problems]
    if strict:
        raise StrictModeError(f"{len(lines)} split-file problem(s) (--strict):\n  " + "\n  ".join(lines))
    for line in lines:
        log.warning("%s", line)


def _runner(
    store: ShardStore, options: BuildOptions, remote: ShardRunner | None
) -> Callable[[list[ShardPlan], ShardTaskConfig], Iterator[ShardResult]]:
    if remote is not None:
        if store.is_process_local:
            raise ShardsError(
                f"{store.url}: an in-memory filesystem is invisible to the workers of a "
                "distributed build (--ray); write to a directory or object store they all reach"
            )
        return lambda plans, config: run_units(write_shard, plans, config, remote=remote)
    if options.workers > 1 and store.is_process_local:
        log.warning(
            "%s is in-memory (one process): writing with 1 worker instead of %d", store.url, options.workers
        )
        return lambda plans, config: run_units(write_shard, plans, config)
    return lambda plans, config: run_units(write_shard, plans, config, options.workers)


def _prepare_output(store: ShardStore, build_fingerprint: str) -> None:
    store.makedirs()
    store.makedirs(PARTS_DIR)
    removed = store.remove_partials() + store.remove_partials(PARTS_DIR)
    if removed:
        log.info("removed %d partial file(s) left by an interrupted build", removed)
    previous = store.read_json(MANIFEST_NAME)
    if isinstance(previous, dict) and previous.get("build", {}).get("fingerprint") != build_fingerprint:
        log.warning("%s: replacing a manifest from a different build", store.url)
        store.remove(MANIFEST_NAME)  # readers must not pair an old manifest with new shards


def _remove_stale_shards(store: ShardStore, keep: set[str]) -> None:
    """Shards of an earlier, different build in the same directory would be duplicates to a reader
    that globs `shard-*.tar`; only this build's shards stay."""
    stale = [path for path in store.fs.glob(store.path("shard-*.tar")) if path.rsplit("/", 1)[-1] not in keep]
    for path in stale:
        store.fs.rm(path)
    if stale:
        log.info("removed %d shard(s) of an earlier build", len(stale))


def _write_results(
    store: ShardStore, listing: Listing, results: list[ShardResult], build: dict, planning_rows: list[dict]
) -> list[dict]:
    split_rows = [
        {"kind": "split-file", "file": p.file, "line": p.line, "reason": p.reason} for p in listing.problems
    ]
    video_rows = [row for r in sorted(results, key=lambda r: r.index) for row in r.errors]
    video_rows += [skipped.row() for skipped in listing.skipped] + planning_rows
    rows = split_rows + sorted(video_rows, key=lambda row: row["path"])
    store.write_bytes(ERRORS_NAME, "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode())
    manifest = assemble_manifest(
        listing.dataset,
        listing.classes,
        listing.split_ids,
        results,
        build,
        len(split_rows),
        len(listing.skipped),
        planning_rows,
    )
    _remove_stale_shards(store, {r.name for r in results if r.count})
    store.write_json(MANIFEST_NAME, manifest.to_json())  # last: its presence means "complete"
    return video_rows


def _build_missing(
    store: ShardStore,
    plans: list[ShardPlan],
    options: BuildOptions,
    config: ShardTaskConfig,
    progress: BuildProgress | None,
    remote: ShardRunner | None,
) -> tuple[list[ShardResult], int]:
    """Keep the shards an earlier run finished, write the others; (all results, number kept)."""
    results = [r for r in (load_finished(store, plan) for plan in plans) if r is not None]
    done = {r.index for r in results}
    todo = [plan for plan in plans if plan.index not in done]
    log.info(
        "%s: %d videos in %d shards (%d already built) -> %s",
        config.dataset,
        sum(len(p.entries) for p in plans),
        len(plans),
        len(done),
        store.url,
    )
    if 0 < len(todo) < options.workers:
        log.warning(
            "only %d shard(s) to build for %d workers (a shard is one task): use a smaller "
            "--shard-size-mb for more parallelism",
            len(todo),
            options.workers,
        )
    if progress:
        progress.start(sum(len(p.entries) for p in plans), len(plans))
        for result in results:
            progress.advance(result)
    for result in _runner(store, options, remote)(todo, config):
        results.append(result)
        if progress:
            progress.advance(result)
    return results, len(done)


def build_shards(
    source: str,
    input_dir: str,
    output: str,
    options: BuildOptions = BuildOptions(),
    runner: ShardRunner | None = None,
    progress: BuildProgress | None = None,
) -> BuildSummary:
    """Build (or finish building) the shards of `source` ("folder", "ucf101", "hmdb51") found in
    `input_dir` into `output` (directory or fsspec URL), as `options` say. `runner` runs the shard
    tasks elsewhere (a Ray cluster: `pretrain.distributed.shard_tasks.ray_shard_runner`)."""
    started = time.perf_counter()
    listing = list_source(source, input_dir, options.labels_from_folders, options.annotations)
    listing = with_held_out_split(listing, options.test_fraction)
    listing.dataset = options.name or listing.dataset
    _report_problems(listing, options.strict)
    if not listing.entries:
        raise ShardsError(f"{input_dir}: no usable {source} videos found")
    check_expected_counts(listing)
    store = ShardStore(str(output))
    with output_lock(store.root if store.is_local else None):  # one build writes a folder at a time
        planning_rows: list[dict] = []
        if options.segment_options() is not None:  # long videos: every segment becomes an entry of its own
            listing, planning_rows = segment_listing(
                listing, options.segment_options(), options.workers, store
            )
        plans = plan_shards(listing.entries, options, listing.dataset)
        build_fingerprint = hashlib.sha256(
            json.dumps([listing.classes, [p.fingerprint for p in plans]]).encode()
        ).hexdigest()
        _prepare_output(store, build_fingerprint)
        config = ShardTaskConfig(
            store.url, listing.dataset, options.probe, options.reencode_options(), options.strict
        )
        results, resumed = _build_missing(store, plans, options, config, progress, runner)
        build = {
            "source": source,
            "input": str(input_dir),
            "fingerprint": build_fingerprint,
            "tool_version": __version__,
            **options.content_fields(),
        }
        errors = _write_results(store, listing, results, build, planning_rows)
    return BuildSummary(
        output=store.url,
        dataset=listing.dataset,
        videos=sum(r.count for r in results),
        skipped=len(errors),
        shards=sum(1 for r in results if r.count),
        bytes=sum(r.bytes for r in results),
        hours=sum(m["duration"] for r in results for m in r.samples) / 3600,
        seconds=time.perf_counter() - started,
        resumed_shards=resumed,
        split_problems=[p.describe() for p in listing.problems],
        errors=errors,
        segments=sum(1 for r in results for m in r.samples if "parent" in m),
        source_videos=len({m.get("parent", m["path"]) for r in results for m in r.samples}),
    )
