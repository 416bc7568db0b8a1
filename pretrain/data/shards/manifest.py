"""The shard contract: what `tubelet shards build` writes and what loaders may rely on.

Directory (local path or fsspec URL)::

    shard-000000.tar ...    WebDataset shards; only those listed in manifest.json are complete
    manifest.json           written last: its presence means the build finished
    errors.jsonl            one JSON object per skipped input or split-file problem
    _build/shard-*.json     per-shard part records (for resuming; loaders ignore them)

Sample (one per source video; tar members `<key>.<ext>` and `<key>.json`):

- key: the relative path escaped by `pretrain.data.shards.keys.key_for_path` (every byte outside
  `[A-Za-z0-9-]`, '_' included, becomes `_xx` hex), so keys are unique and hold no dots or slashes.
- `<key>.<ext>`: the video. `ext` is the original container's suffix ("avi", "mp4", ...) when the
  original bytes are kept (default) or "mp4" (H.264) when re-encoded. `json["ext"]` names it.
- `<key>.json` fields:
    path        original relative path (UCF101: "Class/v_Class_g08_c01.avi", as in the split files;
                HMDB51: "class/video.avi"; folder: relative to INPUT)
    label       int, 0-based index into manifest `classes`; absent for unlabeled corpora
    class       class name; absent for unlabeled corpora
    fps, num_frames, duration (s), width, height, codec ("mpeg4", "h264", ...): of the stored video
    source      dataset name ("ucf101", "hmdb51", "folder")
    split       the split-1 assignment ("train" / "test" / "unused"), or "all" for folder corpora
    splits      {"1": "train"|"test"|"unused", "2": ..., "3": ...}; {} for folder corpora
    ext         extension of the video member
    original    {codec, width, height, fps, num_frames, duration} of the input, only if re-encoded
    Span samples (`--segment-seconds`, `--scenes`, annotation lists) add: parent (= path, the
    source video), start / end (seconds in the parent), segment (number within the parent, or the
    annotation row), cut ("keyframe": packets copied from a keyframe; "exact": re-encoded),
    span_kind ("segment", "scene", "annotation"). Their key is `key_for_path(parent)` +
    `_s<start ms:09d>-<end ms:09d>` (`pretrain.data.shards.spans`); fps/num_frames/duration are the span's.

Splits: every video is stored ONCE. The three official splits are memberships, not copies: a loader
for split N selects samples with `json["splits"][str(N)] == "train"` (or "test"). Storing the corpus
three times would triple the disk (UCF101: ~6.5 GB -> ~20 GB) for no gain, since a shard stream is
filtered cheaply after reading each sample's small json. The cost of this choice is read traffic: a
split-N test pass still reads the train samples' bytes of the shards it touches (the manifest's
`splits[N]["shards"]` lists which shards hold any members of each subset, so the others are skipped).

Split names used by configs (`data.split`, `data.eval_split`): "train"/"test" mean split 1,
"train2"/"test3" name the split, "all" takes every sample (folder corpora). `parse_split_name` and
`sample_in_split` below implement exactly this; loaders should use them rather than re-derive it.

Manifest (`manifest.json`, `Manifest` below): format/format_version, dataset, classes (ordered list,
index = label), num_classes, split_ids, shards [{name, count, bytes, sha256}], totals {samples,
bytes, duration_s, input_videos, skipped_videos, split_problems; segmented builds also videos, segments,
hours, skipped_segments}, splits {id: {"train": n, "test": n,
"unused": n, "shards": {"train": {shard: n}, "test": {shard: n}}}}, class_counts {"all": {class: n},
id: {"train": {class: n}, "test": {class: n}}}, errors_file, build (options, fingerprint),
tool_version, created, storage (the disk-cost note above).
"""

from __future__ import annotations

import datetime
import json
import os
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pretrain import __version__
from pretrain.data.shards.errors import ShardsError

MANIFEST_NAME = "manifest.json"
ERRORS_NAME = "errors.jsonl"
FORMAT = "tubelet-shards"
FORMAT_VERSION = 1
STORAGE_NOTE = (
    "each video is stored once; official split membership is in each sample's "
    "json['splits'] and in manifest['splits'] (no per-split copies: 1x disk, not 3x)"
)


def parse_split_name(name: str) -> tuple[str | None, str]:
    """ "train" -> ("1", "train"); "test3" -> ("3", "test"); "all" -> (None, "all")."""
    match = re.fullmatch(r"(train|test)([123]?)|all", name)
    if not match:
        raise ShardsError(f"split {name!r}: use train, test, train1..train3, test1..test3 or all")
    if name == "all":
        return None, "all"
    return match.group(2) or "1", match.group(1)


def sample_in_split(meta: dict, name: str) -> bool:
    """Whether a sample (its `.json`) belongs to the named split."""
    split_id, subset = parse_split_name(name)
    return split_id is None or meta.get("splits", {}).get(split_id) == subset


@dataclass(frozen=True)
class ShardRecord:
    name: str
    count: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    dataset: str
    classes: list[str]
    shards: list[ShardRecord]
    totals: dict
    splits: dict = field(default_factory=dict)
    split_ids: list[str] = field(default_factory=list)
    class_counts: dict = field(default_factory=dict)
    build: dict = field(default_factory=dict)
    tool_version: str = __version__
    created: str = ""
    errors_file: str = ERRORS_NAME
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    storage: str = STORAGE_NOTE
    location: str = ""
    """Directory or URL the manifest was read from (not stored)."""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def stored_stride(self) -> int:
        """Source frames per stored frame: 1, or the --train-stride of a --train-encoding build."""
        return int(self.build.get("stored", {}).get("stride", 1))

    @property
    def num_samples(self) -> int:
        return sum(shard.count for shard in self.shards)

    def count(self, split_id: str | None = None, subset: str = "train") -> int:
        """Samples of `subset` in official split `split_id`; all samples when split_id is None."""
        if split_id is None:
            return self.num_samples
        return int(self._split(split_id).get(subset, 0))

    def shard_names(self, split_id: str | None = None, subset: str = "train") -> list[str]:
        """Shards holding at least one member of the subset (all shards when split_id is None)."""
        if split_id is None:
            return [shard.name for shard in self.shards]
        return sorted(self._split(split_id).get("shards", {}).get(subset, {}))

    def shard_urls(self, split_id: str | None = None, subset: str = "train") -> list[str]:
        return [posixpath.join(self.location, name) for name in self.shard_names(split_id, subset)]

    def _split(self, split_id: str) -> dict:
        if str(split_id) not in self.splits:
            raise ShardsError(
                f"{self.location}: no split {split_id!r}; available: {self.split_ids or 'none'}"
            )
        return self.splits[str(split_id)]

    def to_json(self) -> dict:
        data = {k: v for k, v in self.__dict__.items() if k != "location"}
        data["shards"] = [shard.__dict__ for shard in self.shards]
        data["num_classes"] = self.num_classes
        return data


def read_manifest(path_or_url: str) -> Manifest:
    """Read `manifest.json` from a shard directory/URL or from the manifest file's own path."""
    import fsspec

    location = path_or_url.rstrip("/")
    if location.endswith(".json"):
        location = posixpath.dirname(location)
    if "://" not in location:  # absolute, so shard paths work from any working directory
        location = os.path.abspath(os.path.expanduser(location))
    fs, root = fsspec.core.url_to_fs(location)
    manifest_path = posixpath.join(root, MANIFEST_NAME)
    try:
        with fs.open(manifest_path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except FileNotFoundError:
        raise ShardsError(
            f"{location}: no {MANIFEST_NAME} (not a shard directory, or the build "
            "has not finished: rerun `tubelet shards build` to complete it)"
        ) from None
    except (NotADirectoryError, IsADirectoryError):
        raise ShardsError(
            f"{location}: a file, not a shard directory (give the folder holding {MANIFEST_NAME})"
        ) from None
    except ValueError as error:
        raise ShardsError(f"{manifest_path}: not valid JSON ({error})") from None
    return _manifest_from_json(data, manifest_path, location)


def _manifest_from_json(data: object, manifest_path: str, location: str) -> Manifest:
    """The parsed manifest, or ShardsError naming the file and the field that is wrong."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ShardsError(f"{manifest_path}: not a Tubelet shard manifest")
    if not isinstance(data.get("shards"), list):
        raise ShardsError(f"{manifest_path}: no 'shards' list (a damaged manifest: rebuild the shards)")
    data.pop("num_classes", None)
    try:
        data["shards"] = [ShardRecord(**shard) for shard in data["shards"]]
        manifest = Manifest(**data, location=location)
    except TypeError as error:
        raise ShardsError(f"{manifest_path}: unexpected fields ({error})") from None
    split_names = [
        name
        for split in manifest.splits.values()
        if isinstance(split, dict)
        for subset in split.get("shards", {}).values()
        for name in subset
    ]
    for name in [shard.name for shard in manifest.shards] + split_names:
        if not is_plain_shard_name(name):
            raise ShardsError(
                f"{manifest_path}: shard name {name!r} is not a file name inside the shard "
                "folder (no '/', '..' or absolute paths); refusing it"
            )
    return manifest


def is_plain_shard_name(name: object) -> bool:
    """A shard name readers may join to the shard folder: one path component, not '.' or '..'."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
    )


def split_summary(samples: Iterable[tuple[str, dict]], split_ids: Iterable[str]) -> tuple[dict, dict]:
    """(splits, class_counts) from `(shard name, sample json)` pairs."""
    samples = list(samples)
    splits, class_counts = {}, {"all": dict(Counter(m["class"] for _, m in samples if "class" in m))}
    for split_id in split_ids:
        subsets = Counter(m["splits"].get(split_id, "unused") for _, m in samples)
        entry = {subset: subsets.get(subset, 0) for subset in ("train", "test", "unused")}
        entry["shards"] = {}
        class_counts[split_id] = {}
        for subset in ("train", "test"):
            members = [(name, m) for name, m in samples if m["splits"].get(split_id) == subset]
            entry["shards"][subset] = dict(sorted(Counter(name for name, _ in members).items()))
            class_counts[split_id][subset] = dict(Counter(m["class"] for _, m in members if "class" in m))
        splits[split_id] = entry
    return splits, class_counts


def span_totals(samples: list[dict], error_rows: list[dict]) -> dict:
    """Videos, segments and hours of a segmented build (spans: samples with a `parent`)."""
    spans = [m for m in samples if "parent" in m]
    if not spans and not any("start" in row for row in error_rows):
        return {}
    return {
        "videos": len({m.get("parent", m["path"]) for m in samples}),
        "segments": len(spans),
        "hours": round(sum(m["duration"] for m in samples) / 3600, 6),
        "skipped_segments": sum(1 for row in error_rows if "start" in row),
    }


def assemble_manifest(
    dataset: str,
    classes: list[str],
    split_ids: Iterable[str],
    results: list,
    build: dict,
    split_problems: int,
    unlisted_inputs: int = 0,
    planning_errors: Sequence[dict] = (),
) -> Manifest:
    """The manifest of a finished build from its shard results (ordered by shard index);
    `unlisted_inputs`: directory entries skipped while listing (dangling symlinks, bad names);
    `planning_errors`: error rows of videos (or their tails) that segmenting could not read."""
    results = sorted(results, key=lambda r: r.index)
    shards = [ShardRecord(r.name, r.count, r.bytes, r.sha256) for r in results if r.count]
    samples = [(r.name, m) for r in results for m in r.samples]
    splits, class_counts = split_summary(samples, split_ids)
    totals = {
        "samples": len(samples),
        "bytes": sum(r.bytes for r in results),
        "duration_s": round(sum(m["duration"] for _, m in samples), 3),
        "input_videos": sum(r.count + len(r.errors) for r in results) + unlisted_inputs,
        "input_bytes": sum(r.input_bytes for r in results),
        "skipped_videos": sum(len(r.errors) for r in results) + unlisted_inputs,
        "split_problems": split_problems,
    }
    error_rows = [*planning_errors, *(row for r in results for row in r.errors)]
    totals["skipped_videos"] += len(planning_errors)
    totals.update(span_totals([m for _, m in samples], error_rows))
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return Manifest(
        dataset=dataset,
        classes=list(classes),
        shards=shards,
        totals=totals,
        splits=splits,
        split_ids=list(split_ids),
        class_counts=class_counts,
        build=build,
        created=created,
    )
